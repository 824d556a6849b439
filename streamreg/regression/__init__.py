"""Multi-subject latent regression (janelia_core's ``ml.latent_regression``), fitted from memory or HDF5.

The names and call forms are janelia_core's, so switching is a change of imports; see
``docs/latent_regression.md``.
"""

from streamreg.regression.collection import SubjectRegressionCollection
from streamreg.regression.data import TimeSeriesBatch, TimeSeriesDataset
from streamreg.regression.fitter import MultiSubjectRegressionFitter
from streamreg.regression.maps import IdentityMap, LinearMap
from streamreg.regression.model import LatentRegModel
from streamreg.regression.predict import predict
from streamreg.regression.predictors import MLP, FormMatrixByCols, SumOfTiledHyperCubeBasisFcns
from streamreg.regression.reporting import format_output_list

__all__ = [
    "MLP",
    "FormMatrixByCols",
    "IdentityMap",
    "LatentRegModel",
    "LinearMap",
    "MultiSubjectRegressionFitter",
    "SubjectRegressionCollection",
    "SumOfTiledHyperCubeBasisFcns",
    "TimeSeriesBatch",
    "TimeSeriesDataset",
    "format_output_list",
    "predict",
]
