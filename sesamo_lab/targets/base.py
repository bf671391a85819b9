"""The interface every target implements."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..symmetry import DiscreteSymmetry


class Target(nn.Module):
    """An unnormalised Boltzmann density p(x) = exp(-S[x]) / Z on fields of ``event_shape``.

    Subclasses implement ``action``; they override the optional references where they exist
    (exact log Z, exact samples, exact sector masses). Buffers move with ``.to(device, dtype)``.
    """

    event_shape: tuple[int, ...]

    def action(self, x: torch.Tensor) -> torch.Tensor:
        """S[x] per sample, shape (batch,)."""
        raise NotImplementedError

    def log_prob_unnormalized(self, x: torch.Tensor) -> torch.Tensor:
        return -self.action(x)

    @property
    def log_z(self) -> float | None:
        """Exact log Z, or None where it is not known."""
        return None

    @property
    def can_sample(self) -> bool:
        return False

    def sample(self, n: int) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no exact sampler")

    def symmetry(self) -> DiscreteSymmetry | None:
        """The group whose sectors the metrics report (None: no sectors)."""
        return None

    def sector_masses(self, symmetry: DiscreteSymmetry) -> torch.Tensor | None:
        """Exact probability mass of each sector of ``symmetry``, or None if not known."""
        return None

    def reference_scale(self) -> float:
        """Width of a centred Gaussian that covers the target, for the density self-check."""
        return 1.0

    def config(self) -> dict:
        """JSON-serialisable constructor arguments."""
        raise NotImplementedError

    @property
    def _anchor(self) -> torch.Tensor:
        for b in self.buffers():
            return b
        return torch.zeros(())

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())


def gaussian_log_prob(x: torch.Tensor, scale: float) -> torch.Tensor:
    """log N(x; 0, scale^2 I) per sample."""
    d = x[0].numel()
    sq = x.reshape(x.shape[0], -1).pow(2).sum(-1)
    return -0.5 * sq / scale**2 - d * (math.log(scale) + 0.5 * math.log(2 * math.pi))
