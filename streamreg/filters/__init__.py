"""Stateful temporal, spatial and elementwise filters (time-first)."""

from streamreg.filters.conv import Conv3d
from streamreg.filters.noise import BernoulliSpikes
from streamreg.filters.nonlinear import (
    Elementwise,
    Exp,
    Identity,
    Rectify,
    Sigmoid,
    Softplus,
    list_nonlinearities,
    make_nonlinearity,
)
from streamreg.filters.spatial import GaussianSpatial
from streamreg.filters.temporal import HighPass, LowPass, TemporalFIR

__all__ = [
    "BernoulliSpikes",
    "Conv3d",
    "Elementwise",
    "Exp",
    "GaussianSpatial",
    "HighPass",
    "Identity",
    "LowPass",
    "Rectify",
    "Sigmoid",
    "Softplus",
    "TemporalFIR",
    "list_nonlinearities",
    "make_nonlinearity",
]
