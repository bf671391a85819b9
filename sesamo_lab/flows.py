"""Bijections in the prior -> field direction: affine couplings (RealNVP) and their composition.

Convention used by every layer in the kit:

* ``forward(z)`` returns ``(x, log_det)`` with ``log_det = log|det dx/dz|`` per sample;
* ``inverse(x)`` returns ``(z, log_det)`` with ``log_det = log|det dz/dx|`` per sample.

So for a flow ``x = g(z)`` with base density ``q0``:
``log q(x) = log q0(z) - forward_log_det = log q0(g^{-1}(x)) + inverse_log_det``.
Log-dets are accumulated in the dtype and on the device of the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class ElementwiseAffine(nn.Module):
    """x = z * exp(log_scale) + shift, one scale and shift per entry; identity at initialisation.

    Placed last in a flow it learns the location and width of the mode directly, so the
    couplings only have to learn its shape.
    """

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(event_shape))
        self.shift = nn.Parameter(torch.zeros(event_shape))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = z * self.log_scale.exp() + self.shift
        return x, self.log_scale.sum().expand(z.shape[0])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (x - self.shift) * (-self.log_scale).exp()
        return z, (-self.log_scale.sum()).expand(x.shape[0])


class MLPConditioner(nn.Module):
    """(s, t) = MLP(masked input), for fields of any shape (flattened).

    The last layer starts at zero, so a coupling using it is the identity at initialisation.
    """

    def __init__(self, event_shape: tuple[int, ...], hidden: int, depth: int):
        super().__init__()
        self.event_shape = tuple(event_shape)
        d = math.prod(self.event_shape)
        layers: list[nn.Module] = []
        width = d
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * d)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, z_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = z_masked.shape[0]
        out = self.head(self.body(z_masked.reshape(n, -1)))
        s, t = out.chunk(2, dim=-1)
        return s.reshape(n, *self.event_shape), t.reshape(n, *self.event_shape)


class AffineCoupling(nn.Module):
    """RealNVP affine coupling (Dinh et al., arXiv 1605.08803).

    With a binary mask m (1 = frozen, 0 = transformed):
        x = m*z + (1-m) * (z * exp(s(m*z)) + t(m*z)),   log|det dx/dz| = sum (1-m) s.
    The raw scale is soft-clamped, s = c * tanh(s_raw / c), so one bad step cannot overflow exp.
    A conditioner with a ``reference(frozen)`` method scales about that point instead of 0.
    """

    def __init__(self, mask: torch.Tensor, conditioner: nn.Module, scale_clamp: float = 3.0):
        super().__init__()
        self.register_buffer("mask", mask.clone().float())
        self.conditioner = conditioner
        self.scale_clamp = float(scale_clamp)

    def _scale_shift(self, frozen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.conditioner(frozen)
        c = self.scale_clamp
        free = 1 - self.mask
        s = free * c * torch.tanh(s / c)
        # A conditioner may name a reference point r (a function of the frozen entries) about
        # which to scale: x = r + (z − r) e^s + t, i.e. the shift t + r (1 − e^s).
        reference = getattr(self.conditioner, "reference", None)
        r = reference(frozen) if reference is not None else None
        if r is not None:
            t = t + r * (1 - s.exp())
        return s, free * t

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mask.to(z.dtype)
        s, t = self._scale_shift(z * m)
        x = z * m + (1 - m) * (z * s.exp() + t)
        return x, s.reshape(z.shape[0], -1).sum(-1)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mask.to(x.dtype)
        s, t = self._scale_shift(x * m)
        z = x * m + (1 - m) * (x - t) * (-s).exp()
        return z, -s.reshape(x.shape[0], -1).sum(-1)


class Flow(nn.Module):
    """A composition of bijections, applied in order in ``forward`` and reversed in ``inverse``."""

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for layer in self.layers:
            z, ld = layer(z)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x)
            log_det = log_det + ld
        return x, log_det


def alternating_masks(event_shape: tuple[int, ...], count: int) -> list[torch.Tensor]:
    """Masks that freeze the even-indexed (then odd-indexed) entries of the flattened field.

    For a 2-vector they alternate between freezing x1 and freezing x2.
    """
    d = math.prod(event_shape)
    even = (torch.arange(d) % 2 == 0).float().reshape(event_shape)
    return [even if i % 2 == 0 else 1 - even for i in range(count)]


def realnvp(
    event_shape: tuple[int, ...],
    *,
    couplings: int = 8,
    hidden: int = 64,
    depth: int = 2,
    scale_clamp: float = 3.0,
    final_affine: bool = True,
) -> Flow:
    """A RealNVP flow with MLP conditioners and alternating masks (identity at initialisation)."""
    if math.prod(event_shape) < 2:
        raise ValueError("realnvp needs at least two field components to couple")
    layers: list[nn.Module] = [
        AffineCoupling(mask, MLPConditioner(event_shape, hidden, depth), scale_clamp)
        for mask in alternating_masks(event_shape, couplings)
    ]
    if final_affine:
        layers.append(ElementwiseAffine(event_shape))
    return Flow(layers)
