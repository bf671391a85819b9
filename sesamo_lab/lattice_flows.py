"""Lattice-aware coupling flows: checkerboard masks and convolutional conditioners.

A lattice field has shape (L_t, L_x) (one real component per site) or (C, L_t, L_x) (C components
per site, e.g. C = 2 for a complex field). The couplings are the affine couplings of
``sesamo_lab.flows`` (same convention: ``forward(z) -> (x, log|det dx/dz|)``,
``inverse(x) -> (z, log|det dz/dx|)``), with lattice-specific parts:

* checkerboard masks: the sites with (t + x) even are frozen while the odd ones are updated, then
  the other way round, so every updated site sees all its nearest neighbours;
* convolutional conditioners with circular padding: (s, t) at a site depend on its neighbourhood
  with the lattice's periodic boundary conditions, and the same weights are used at every site,
  so the flow commutes with lattice translations that preserve the checkerboard (even shifts);
* site couplings (two-component fields): channel 0 is updated at every site given the whole of
  channel 1. Checkerboard couplings freeze or update both components of a site together, so they
  can never make Re φ_x depend on Im φ_x at the same site; on the ordered ring |φ| ≈ v that
  dependence is the curvature Re φ_x ≈ v − (Im φ_x)²/(2v);
* global linear layers for the long-range Gaussian correlations that local couplings build only
  slowly: a lower-triangular map (``TriangularLinear``) or a translation-invariant scaling of
  every lattice momentum (``FourierScaling``).

Two builders: ``lattice_realnvp`` (a field on ℝ^{C·V}) and ``slice_flow`` (the U(1) slice model's
flow, whose channel 1 matters only up to a global constant; see ``sesamo_lab.u1``).
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


def checkerboard_masks(event_shape: tuple[int, ...], count: int) -> list[torch.Tensor]:
    """Alternating checkerboard masks (1 = frozen) of the field's shape, all channels alike.

    For lattices with an odd size the checkerboard is not bipartite across the boundary; the masks
    are still valid (any binary mask gives an invertible coupling), only less symmetric.
    """
    lt, lx = event_shape[-2], event_shape[-1]
    return [checkerboard(lt, lx, i % 2).expand(event_shape).clone() for i in range(count)]


def site_mask(event_shape: tuple[int, ...], updated_channel: int) -> torch.Tensor:
    """Freezes every channel but ``updated_channel`` at every site (1 = frozen)."""
    m = torch.ones(event_shape)
    m[updated_channel] = 0.0
    return m


class ConvConditioner(nn.Module):
    """(s, t) = CNN(masked field) with circular padding; the output layer starts at zero.

    Works on (batch, L_t, L_x) (one channel) or (batch, C, L_t, L_x) fields.

    ``centre`` (a (L_t, L_x) 0/1 map of the frozen entries of channel 1) is for fields whose
    channel 1 matters only up to a global constant (the U(1) slice flow). The network then sees
    channel 1 minus its mean m over those entries, and ``reference`` returns m as the point about
    which the coupling scales channel 1, x = m + (z − m) e^s + t. Adding a constant to channel 1
    then adds the same constant to the coupling's output and leaves (s, t) unchanged. m depends
    on the frozen entries only, so the coupling stays triangular with the same log-determinant.
    """

    def __init__(
        self,
        event_shape: tuple[int, ...],
        hidden: int,
        depth: int,
        kernel: int = 3,
        centre: torch.Tensor | None = None,
    ):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.channels = 1 if len(event_shape) == 2 else event_shape[0]
        if centre is not None:
            if self.channels < 2:
                raise ValueError("centring needs a field with at least two channels")
            if centre.sum() < 1:
                raise ValueError("centring needs at least one frozen entry in channel 1")
            self.register_buffer("centre", centre.float().clone())
        else:
            self.centre = None
        pad = kernel // 2
        layers: list[nn.Module] = []
        width = self.channels
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

    def _frozen_mean(self, h: torch.Tensor) -> torch.Tensor:
        c = self.centre.to(h.dtype)
        return (h[:, 1] * c).sum((-2, -1), keepdim=True) / c.sum()

    def reference(self, z_masked: torch.Tensor) -> torch.Tensor | None:
        """The point about which the coupling scales: channel 1's frozen mean, 0 elsewhere."""
        if self.centre is None:
            return None
        n = z_masked.shape[0]
        h = z_masked.reshape(n, self.channels, *self.event_shape[-2:])
        ref = torch.zeros_like(h)
        ref[:, 1] = self._frozen_mean(h)
        return ref.reshape(n, *self.event_shape)

    def forward(self, z_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = z_masked.shape[0]
        h = z_masked.reshape(n, self.channels, *self.event_shape[-2:])
        if self.centre is not None:
            centred = (h[:, 1] - self._frozen_mean(h)) * self.centre.to(h.dtype)
            h = torch.cat([h[:, :1], centred[:, None], h[:, 2:]], dim=1)
        out = self.head(self.body(h))
        s, t = out.chunk(2, dim=1)
        return s.reshape(n, *self.event_shape), t.reshape(n, *self.event_shape)


class ChannelAffine(nn.Module):
    """x = z * exp(log_scale_c) + shift_c with one (scale, shift) per channel, all sites alike.

    Translation invariant; the identity at initialisation.
    """

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__()
        self.event_shape = tuple(event_shape)
        shape = (1, 1) if len(event_shape) == 2 else (event_shape[0], 1, 1)
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.shift = nn.Parameter(torch.zeros(shape))

    def _log_det(self, n: int) -> torch.Tensor:
        sites = self.event_shape[-1] * self.event_shape[-2]
        return (self.log_scale.sum() * sites).expand(n)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.log_scale.to(z.dtype), self.shift.to(z.dtype)
        return z * s.exp() + t, self._log_det(z.shape[0]).to(z.dtype)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.log_scale.to(x.dtype), self.shift.to(x.dtype)
        return (x - t) * (-s).exp(), -self._log_det(x.shape[0]).to(x.dtype)


class ChannelShift(nn.Module):
    """x = z + t_c on every site of channel c (log-det 0); the identity at initialisation."""

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__()
        self.event_shape = tuple(event_shape)
        channels = 1 if len(event_shape) == 2 else event_shape[0]
        self.shift = nn.Parameter(torch.zeros(channels))

    def _offset(self, like: torch.Tensor) -> torch.Tensor:
        t = self.shift.to(like.dtype)
        return t.reshape(()) if len(self.event_shape) == 2 else t.reshape(-1, 1, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z + self._offset(z), z.new_zeros(z.shape[0])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x - self._offset(x), x.new_zeros(x.shape[0])


class TriangularLinear(nn.Module):
    """x = L z on the flattened field, L lower triangular with L_ii = exp(d_i).

    A global linear map over all D entries: log|det dx/dz| = Σ_i d_i. Placed last in a lattice
    flow it supplies the long-range Gaussian correlations. The identity at initialisation.
    """

    def __init__(self, event_shape: tuple[int, ...]):
        super().__init__()
        d = 1
        for n in event_shape:
            d *= n
        self.lower = nn.Parameter(torch.zeros(d, d))
        self.log_diag = nn.Parameter(torch.zeros(d))

    def _matrix(self) -> torch.Tensor:
        return torch.tril(self.lower, -1) + torch.diag(self.log_diag.exp())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = z.reshape(z.shape[0], -1) @ self._matrix().to(z.dtype).T
        return out.reshape(z.shape), self.log_diag.sum().to(z.dtype).expand(z.shape[0])

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(x.shape[0], -1)
        sol = torch.linalg.solve_triangular(self._matrix().to(x.dtype), flat.T, upper=False)
        return sol.T.reshape(x.shape), (-self.log_diag.sum()).to(x.dtype).expand(x.shape[0])


class FourierScaling(nn.Module):
    """A translation-invariant linear layer: every lattice momentum of every channel is scaled.

    x = F⁻¹[e^{θ_c(k)} F[z]] channel by channel, F the 2-d DFT, with θ_c(k) = θ_c(−k) so that
    x is real (a symmetric circular convolution); log|det dx/dz| = Σ_{c,k} θ_c(k). This is the
    form of a free (Gaussian) lattice field's correlations. ``fixed_zero_mode`` lists channels
    whose k = 0 mode is left alone (θ = 0), so that adding a constant to such a channel commutes
    with the layer. The identity at initialisation.
    """

    def __init__(self, event_shape: tuple[int, ...], fixed_zero_mode: tuple[int, ...] = ()):
        super().__init__()
        self.event_shape = tuple(event_shape)
        shape = self.event_shape if len(event_shape) == 3 else (1, *event_shape)
        self.theta = nn.Parameter(torch.zeros(shape))
        lt, lx = shape[-2:]
        self.register_buffer("neg_t", (-torch.arange(lt)) % lt, persistent=False)
        self.register_buffer("neg_x", (-torch.arange(lx)) % lx, persistent=False)
        free = torch.ones(shape)
        for c in fixed_zero_mode:
            free[c, 0, 0] = 0.0
        self.register_buffer("free", free)

    def log_scale(self) -> torch.Tensor:
        """θ_c(k), symmetrised under k → −k, zero on the fixed zero modes."""
        mirrored = self.theta[:, self.neg_t][:, :, self.neg_x]
        return 0.5 * (self.theta + mirrored) * self.free

    def _scale(self, z: torch.Tensor, sign: float) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.log_scale().to(z.dtype)
        h = z.reshape(z.shape[0], *theta.shape)
        out = torch.fft.ifft2(torch.fft.fft2(h) * (sign * theta).exp()).real
        return out.reshape(z.shape), (sign * theta.sum()).expand(z.shape[0])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._scale(z, 1.0)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._scale(x, -1.0)


def _couplings(
    event_shape: tuple[int, ...],
    masks: list[torch.Tensor],
    hidden: int,
    depth: int,
    kernel: int,
    scale_clamp: float,
    centre: bool,
) -> list[nn.Module]:
    return [
        AffineCoupling(
            mask,
            ConvConditioner(event_shape, hidden, depth, kernel, mask[1] if centre else None),
            scale_clamp,
        )
        for mask in masks
    ]


def lattice_realnvp(
    event_shape: tuple[int, ...],
    *,
    couplings: int = 8,
    hidden: int = 16,
    depth: int = 2,
    kernel: int = 3,
    scale_clamp: float = 3.0,
    final_affine: bool = True,
    linear: bool = False,
) -> Flow:
    """Checkerboard RealNVP with circular CNN conditioners; the identity at initialisation.

    Then, optionally, one (scale, shift) per channel and a global lower-triangular linear map.
    """
    if len(event_shape) not in (2, 3):
        raise ValueError(
            f"lattice fields have shape (L_t, L_x) or (C, L_t, L_x), got {event_shape}"
        )
    masks = checkerboard_masks(event_shape, couplings)
    layers = _couplings(event_shape, masks, hidden, depth, kernel, scale_clamp, centre=False)
    if final_affine:
        layers.append(ChannelAffine(event_shape))
    if linear:
        layers.append(TriangularLinear(event_shape))
    return Flow(layers)


def slice_flow(
    lattice: tuple[int, int],
    *,
    couplings: int = 8,
    hidden: int = 16,
    depth: int = 2,
    kernel: int = 3,
    scale_clamp: float = 3.0,
    site_couplings: bool = True,
    fourier: bool = True,
) -> Flow:
    """The U(1) slice model's flow on (2, L_t, L_x) fields (a, β), β only up to a constant.

    Every layer F satisfies F(w + c e) = F(w) + c e, e = (0, 1, …, 1) (a constant on channel 1):
    conditioners see channel 1 centred and couplings scale it about a frozen mean, the site
    couplings update channel 0 only, the Fourier scaling leaves channel 1's zero mode alone and
    the final shift moves channel 0 only. It is also equivariant under lattice translations that
    preserve the checkerboard. Why this matters, and the resulting density: ``sesamo_lab.u1``.

    Layout: checkerboard couplings in pairs, each pair followed by a site coupling when
    ``site_couplings``; then the Fourier scaling (``fourier``) and a shift of channel 0.
    """
    lt, lx = lattice
    shape = (2, lt, lx)
    masks: list[torch.Tensor] = []
    for i, mask in enumerate(checkerboard_masks(shape, couplings)):
        masks.append(mask)
        if site_couplings and i % 2 == 1:
            masks.append(site_mask(shape, 0))
    layers = _couplings(shape, masks, hidden, depth, kernel, scale_clamp, centre=True)
    if fourier:
        layers.append(FourierScaling(shape, fixed_zero_mode=(1,)))
    layers.append(ChannelShift(shape))
    return Flow(layers)
