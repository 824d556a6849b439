"""Models in the Convis tradition: LN, LNLN and a VirtualRetina-style Retina."""

from streamreg.models.ln import LN, LNLN
from streamreg.models.retina import OPL, Bipolar, GanglionInput, Retina

__all__ = ["LN", "LNLN", "OPL", "Bipolar", "GanglionInput", "Retina"]
