"""Target densities p(x) = exp(-S[x]) / Z that carry their own exact references."""

from .base import Target
from .gmm import GaussianMixture

__all__ = ["Target", "GaussianMixture"]
