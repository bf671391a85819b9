"""The base density q0 of every flow: a standard normal on the event shape."""

from __future__ import annotations

import math

import torch
from torch import nn


class StandardNormal(nn.Module):
    """q0(z) = N(0, 1) independently on every entry of a tensor of shape ``event_shape``.

    log q0(z) = -|z|^2 / 2 - (D / 2) log(2 pi), D = prod(event_shape).
    A zero-size buffer carries the dtype and device, so ``.to()`` moves the prior with its flow.
    """

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def dim(self) -> int:
        return math.prod(self.event_shape)

    def sample(self, n: int) -> torch.Tensor:
        a = self._anchor
        return torch.randn((n, *self.event_shape), dtype=a.dtype, device=a.device)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        sq = z.reshape(z.shape[0], -1).pow(2).sum(-1)
        return -0.5 * sq - 0.5 * self.dim * math.log(2 * math.pi)
