"""Lattice-aware coupling flows: checkerboard masks and convolutional conditioners.

A lattice field has shape (L_t, L_x) (one real component per site) or (C, L_t, L_x) (C components
per site, e.g. C = 2 for a complex field). The couplings are the affine couplings of
``sesamo_lab.flows`` (same convention: ``forward(z) -> (x, log|det dx/dz|)``,
``inverse(x) -> (z, log|det dz/dx|)``), with two lattice-specific parts:

* checkerboard masks: the sites with (t + x) even are frozen while the odd ones are updated, then
  the other way round, so every updated site sees all its nearest neighbours;
* convolutional conditioners with circular padding: (s, t) at a site depend on its neighbourhood
  with the lattice's periodic boundary conditions, and the same weights are used at every site,
  so the flow commutes with lattice translations that preserve the checkerboard (even shifts).

Pinned entries: the U(1) slice model (``sesamo_lab.u1``) lays its 2V − 1 coordinates out on a
(2, L_t, L_x) grid with one entry fixed to zero. ``pinned`` marks such entries; every mask freezes
them and ``MaskedElementwiseAffine`` leaves them alone, so they stay zero and do not count in any
log-determinant.
"""

from __future__ import annotations

import torch
from torch import nn

from .flows import AffineCoupling, Flow


def checkerboard(lt: int, lx: int, parity: int = 0) -> torch.Tensor:
    """1 on sites with (t + x) % 2 == parity, else 0; shape (L_t, L_x)."""
    t = torch.arange(lt).unsqueeze(1)
    x = torch.arange(lx).unsqueeze(0)
    return ((t + x) % 2 == parity).float()


def checkerboard_masks(
    event_shape: tuple[int, ...], count: int, pinned: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Alternating checkerboard masks (1 = frozen) of the field's shape; pinned entries frozen.

    For lattices with an odd size the checkerboard is not bipartite across the boundary; the masks
    are still valid (any binary mask gives an invertible coupling), only less symmetric.
    """
    lt, lx = event_shape[-2], event_shape[-1]
    masks = []
    for i in range(count):
        m = checkerboard(lt, lx, i % 2).expand(event_shape).clone()
        if pinned is not None:
            m = torch.maximum(m, pinned.float())
        masks.append(m)
    return masks


class ConvConditioner(nn.Module):
    """(s, t) = CNN(masked field) with circular padding; the output layer starts at zero.

    Works on (batch, L_t, L_x) (one channel) or (batch, C, L_t, L_x) fields. ``position`` is an
    optional fixed (K, L_t, L_x) map appended to the input as K more channels; the U(1) slice
    model passes the location of its pinned entry, which breaks translation invariance.
    """

    def __init__(
        self,
        event_shape: tuple[int, ...],
        hidden: int,
        depth: int,
        kernel: int = 3,
        position: torch.Tensor | None = None,
    ):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.channels = 1 if len(event_shape) == 2 else event_shape[0]
        if position is not None:
            self.register_buffer("position", position.float().clone())
        else:
            self.position = None
        pad = kernel // 2
        layers: list[nn.Module] = []
        width = self.channels + (0 if position is None else position.shape[0])
        for _ in range(depth):
            layers += [
                nn.Conv2d(width, hidden, kernel, padding=pad, padding_mode="circular"),
                nn.SiLU(),
            ]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(
            width, 2 * self.channels, kernel, padding=pad, padding_mode="circular"
        )
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, z_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = z_masked.shape[0]
        h = z_masked.reshape(n, self.channels, *self.event_shape[-2:])
        if self.position is not None:
            pos = self.position.to(h.dtype).expand(n, *self.position.shape)
            h = torch.cat([h, pos], dim=1)
        out = self.head(self.body(h))
        s, t = out.chunk(2, dim=1)
        return s.reshape(n, *self.event_shape), t.reshape(n, *self.event_shape)


class MaskedElementwiseAffine(nn.Module):
    """x = z * exp(log_scale) + shift on the free entries; pinned entries pass unchanged.

    ``shared=True`` uses one (scale, shift) per channel for all sites (translation invariant);
    otherwise one per entry. Identity at initialisation.
    """

    def __init__(
        self, event_shape: tuple[int, ...], pinned: torch.Tensor | None = None, shared: bool = True
    ):
        super().__init__()
        self.event_shape = tuple(event_shape)
        shape = (
            ((1, 1) if len(event_shape) == 2 else (event_shape[0], 1, 1))
            if shared
            else self.event_shape
        )
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.shift = nn.Parameter(torch.zeros(shape))
        free = torch.ones(event_shape) if pinned is None else 1 - pinned.float()
        self.register_buffer("free", free)

    def _params(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        free = self.free.to(like.dtype)
        return self.log_scale.expand(self.event_shape) * free, self.shift.expand(
            self.event_shape
        ) * free

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._params(z)
        return z * s.exp() + t, s.sum().expand(z.shape[0])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._params(x)
        return (x - t) * (-s).exp(), (-s.sum()).expand(x.shape[0])


class TriangularLinear(nn.Module):
    """x_free = L z_free with L lower triangular, L_ii = exp(d_i); pinned entries untouched.

    A global linear map over all free entries of the field (D = number of free entries):
    log|det dx/dz| = Σ_i d_i. Placed last in a lattice flow it supplies the long-range Gaussian
    correlations that local couplings build only slowly (for the U(1) slice it learns the
    variance profile around the pinned site). The identity at initialisation.
    """

    def __init__(self, event_shape: tuple[int, ...], pinned: torch.Tensor | None = None):
        super().__init__()
        free = torch.ones(event_shape) if pinned is None else 1 - pinned.float()
        self.register_buffer("free_index", free.reshape(-1).nonzero().squeeze(-1))
        d = int(self.free_index.numel())
        self.lower = nn.Parameter(torch.zeros(d, d))
        self.log_diag = nn.Parameter(torch.zeros(d))

    def _matrix(self) -> torch.Tensor:
        return torch.tril(self.lower, -1) + torch.diag(self.log_diag.exp())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = z.reshape(z.shape[0], -1)
        out = flat.clone()
        out[:, self.free_index] = flat[:, self.free_index] @ self._matrix().T
        return out.reshape(z.shape), self.log_diag.sum().expand(z.shape[0])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(x.shape[0], -1)
        out = flat.clone()
        sol = torch.linalg.solve_triangular(self._matrix(), flat[:, self.free_index].T, upper=False)
        out[:, self.free_index] = sol.T
        return out.reshape(x.shape), (-self.log_diag.sum()).expand(x.shape[0])


def lattice_realnvp(
    event_shape: tuple[int, ...],
    *,
    couplings: int = 8,
    hidden: int = 16,
    depth: int = 2,
    kernel: int = 3,
    scale_clamp: float = 3.0,
    pinned: torch.Tensor | None = None,
    final_affine: bool = True,
    linear: bool = False,
) -> Flow:
    """Checkerboard RealNVP with circular CNN conditioners; the identity at initialisation."""
    if len(event_shape) not in (2, 3):
        raise ValueError(
            f"lattice fields have shape (L_t, L_x) or (C, L_t, L_x), got {event_shape}"
        )
    position = None if pinned is None else pinned.reshape(-1, *event_shape[-2:]).amax(0)[None]
    layers: list[nn.Module] = [
        AffineCoupling(
            mask, ConvConditioner(event_shape, hidden, depth, kernel, position), scale_clamp
        )
        for mask in checkerboard_masks(event_shape, couplings, pinned)
    ]
    if final_affine:
        # With a pinned entry the field is not translation invariant (β is measured from the
        # pinned site, so its variance grows away from it): give every entry its own scale.
        layers.append(MaskedElementwiseAffine(event_shape, pinned, shared=pinned is None))
    if linear:
        layers.append(TriangularLinear(event_shape, pinned))
    return Flow(layers)
