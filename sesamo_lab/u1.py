"""SESaMo for a continuous U(1): the slice construction of method.md section 4.3.

A complex lattice field φ = a + i b on V sites (shape (batch, 2, L_t, L_x)) has the global
symmetry φ → e^{iα} φ. Its "fundamental domain" is the slice Ω = {M real and > 0}, M = Σ_x φ_x,
a (2V − 1)-dimensional half-hyperplane. The model is

    c ~ q_c  (a flow on the slice coordinates c = (a_1 … a_V, b_1 … b_{V−1}), b_V = −Σ_{j<V} b_j),
    y = y(c) ∈ Ω,   α ~ p_b(α) on [0, 2π),   x = e^{iα} y,
    log q(x) = log q_c(c) + log p_b(α) − log|M(x)|.

(The embedding c → y has Gram determinant V, and the rotation direction iy has component
|M|/√V normal to the slice; the two √V cancel, leaving 1/|M|.) The inverse is exact:
α = arg M(x), y = e^{−iα} x, c read off y. The penalty uses λ(y) = −Re M(y) = −Σ_x a_x.

How the flow produces c. The flow (``lattice_flows.slice_flow``) maps z ∈ ℝ^{2V} to
w = (a, β) ∈ ℝ^{2V} on the (2, L_t, L_x) grid, and the physical imaginary part is the projection
b = β − mean(β) (so Σ b = 0). Every layer commutes with adding a constant to β,
F(w + t e) = F(w) + t e with e = (0, 1, …, 1), so the flow is well defined on the quotient
ℝ^{2V}/ℝe ≅ U = {Σ b = 0}: the prior's e-component is never seen, the base density on U is the
standard normal of the projected z (2V − 1 dimensions), and because J e = e the Jacobian on U has
the same determinant as the full one. Hence, in orthonormal coordinates on U,
log q_U(y) = log N(P z) − log|det ∂w/∂z|. The coordinates c embed in U with Gram determinant V,
so log q_c(c) = log q_U(y) + ½ log V.

Why not simply pin b_V = −Σ_{j<V} b_j and let the flow produce the rest? The target is invariant
under lattice translations, and so is this construction (exactly for the shifts that preserve the
checkerboard: the conditioners are circular convolutions and the global linear layer is a
Fourier scaling). An earlier version pinned one site (β_j = b_j − b_V); that singles out a site:
its log q changed by 1.1–1.2 (standard deviation) when its own samples were shifted by lattice
sites, and it plateaued at ESS ≈ 0.75 on the 8×8 preset, against 0.92 for this construction after
half the training steps (docs/phi4.md).

The angle density p_b:
* exact U(1): uniform, 1/(2π), no parameters (``UniformAngle``);
* broken U(1): ``PiecewiseLinearAngle``, a density that is piecewise linear between K equally
  spaced nodes on the circle (continuous and periodic). Sampling inverts its piecewise-quadratic
  CDF in closed form, α = F_θ^{-1}(v) with v ~ U(0, 1), so α is a differentiable function of the
  node parameters θ: the parameters get the pathwise (reparametrised) gradient of
  E_v[log p_θ(α_θ(v)) + log q_c + S(e^{iα_θ(v)} y)] by ordinary back-propagation. No REINFORCE term
  is needed (``Draw.score`` is None).

The model deliberately has no attribute ``symmetry``: the metrics treat that name as a finite
group with sectors, and U(1) has none.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .flows import Flow
from .models import Draw, SamplingModel
from .penalty import BijectivityPenalty
from .validation import positive_int

TWO_PI = 2 * math.pi


def magnetisation_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Re M, Im M) of complex fields of shape (batch, 2, L_t, L_x)."""
    s = x.reshape(x.shape[0], 2, -1).sum(-1)
    return s[:, 0], s[:, 1]


def rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """e^{i angle} φ for every site, angle per sample."""
    c = torch.cos(angle).reshape(-1, 1, 1)
    s = torch.sin(angle).reshape(-1, 1, 1)
    a, b = x[:, 0], x[:, 1]
    return torch.stack([c * a - s * b, s * a + c * b], dim=1)


class UniformAngle(nn.Module):
    """p(α) = 1/(2π) on [0, 2π): the exact-U(1) modulation."""

    learnable = False

    def __init__(self):
        super().__init__()
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = self._anchor
        alpha = TWO_PI * torch.rand(n, dtype=a.dtype, device=a.device)
        return alpha, self.log_prob(alpha)

    def log_prob(self, alpha: torch.Tensor) -> torch.Tensor:
        return torch.full_like(alpha, -math.log(TWO_PI))

    def density(self, alpha: torch.Tensor) -> torch.Tensor:
        return self.log_prob(alpha).exp()


class PiecewiseLinearAngle(nn.Module):
    """A learnable density on the circle, linear between K equally spaced nodes.

    Node heights h_k = exp(θ_k) (θ = 0: uniform), bin width w = 2π/K, h_K = h_0 (periodic).
    p(α) = [(1 − t) h_k + t h_{k+1}] / Z for α = w (k + t), Z = w Σ_k h_k.
    Within bin k the CDF rises by (w/Z) [h_k t + (h_{k+1} − h_k) t²/2]; sampling solves this
    quadratic for t in the cancellation-free form t = 2r / (h_k + sqrt(h_k² + 2 Δ r)).
    """

    learnable = True

    def __init__(self, nodes: int = 64):
        super().__init__()
        self.nodes = positive_int("angle nodes", nodes)
        if self.nodes < 3:
            raise ValueError("the angle density needs at least 3 nodes")
        self.theta = nn.Parameter(torch.zeros(self.nodes))

    @property
    def width(self) -> float:
        return TWO_PI / self.nodes

    def _heights(self, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.theta.to(dtype).exp()
        h_next = torch.roll(h, -1)
        z = self.width * h.sum()
        return h, h_next, z

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self.theta.dtype
        h, h_next, z = self._heights(dtype)
        bin_mass = self.width * 0.5 * (h + h_next) / z  # sums to 1
        cdf = torch.cat([bin_mass.new_zeros(1), torch.cumsum(bin_mass, 0)])
        v = torch.rand(n, dtype=dtype, device=h.device)
        k = torch.searchsorted(cdf.detach(), v, right=True) - 1
        k = k.clamp(0, self.nodes - 1)
        r = (v - cdf[k]) * z / self.width  # in units of the unnormalised bin integral
        hk, delta = h[k], (h_next - h)[k]
        disc = (hk * hk + 2 * delta * r).clamp_min(0)
        t = (2 * r / (hk + disc.sqrt())).clamp(0, 1)
        alpha = self.width * (k.to(dtype) + t)
        log_p = torch.log(hk + delta * t) - torch.log(z)
        return alpha, log_p

    def log_prob(self, alpha: torch.Tensor) -> torch.Tensor:
        h, h_next, z = self._heights(alpha.dtype)
        u = torch.remainder(alpha, TWO_PI) / self.width
        k = u.floor().long().clamp(0, self.nodes - 1)
        t = u - k.to(alpha.dtype)
        return torch.log(h[k] * (1 - t) + h_next[k] * t) - torch.log(z)

    def density(self, alpha: torch.Tensor) -> torch.Tensor:
        return self.log_prob(alpha).exp()


class U1SliceSESaMo(SamplingModel):
    """SESaMo with a U(1) modulation on complex lattice fields (see the module docstring)."""

    def __init__(
        self,
        flow: Flow,
        lattice: tuple[int, int],
        angle: UniformAngle | PiecewiseLinearAngle,
        penalty: BijectivityPenalty,
    ):
        super().__init__()
        self.lt, self.lx = lattice
        self.volume = self.lt * self.lx
        self.event_shape = (2, self.lt, self.lx)
        self.flow = flow
        # Named ``modulation`` so the trainer gives it its own learning rate.
        self.modulation = angle
        self.penalty = penalty

    @property
    def coordinate_dim(self) -> int:
        return 2 * self.volume - 1

    def _log_q_c(self, z: torch.Tensor, log_det_dz_dw: torch.Tensor) -> torch.Tensor:
        """log q_c(c) from the base point z and log|det ∂z/∂w| (see the module docstring)."""
        zb = z[:, 1] - z[:, 1].mean(dim=(-2, -1), keepdim=True)  # the prior lives on U
        sq = z[:, 0].pow(2).sum((-2, -1)) + zb.pow(2).sum((-2, -1))
        log_prior = -0.5 * sq - 0.5 * self.coordinate_dim * math.log(TWO_PI)
        return log_prior + log_det_dz_dw + 0.5 * math.log(self.volume)

    def slice_sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """y ∈ slice (before the rotation) and log q_c(c)."""
        z = torch.randn((n, *self.event_shape), dtype=self.dtype, device=self.device)
        w, log_det = self.flow(z)
        a, beta = w[:, 0], w[:, 1]
        y = torch.stack([a, beta - beta.mean(dim=(-2, -1), keepdim=True)], dim=1)
        return y, self._log_q_c(z, -log_det)

    def draw(self, n: int) -> Draw:
        y, log_qc = self.slice_sample(n)
        alpha, log_pa = self.modulation.sample(n)
        x = rotate(y, alpha)
        re_m, _ = magnetisation_parts(y)
        log_q = log_qc + log_pa - torch.log(re_m.abs())
        constraint = -re_m.unsqueeze(-1)  # λ(y) = −Re M(y)
        return Draw(
            x=x,
            log_q=log_q,
            penalty=self.penalty(constraint),
            score=None,
            outside=re_m <= 0,
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        re_m, im_m = magnetisation_parts(x)
        alpha = torch.remainder(torch.atan2(im_m, re_m), TWO_PI)
        y = rotate(x, -alpha)
        # y itself (Σ b = 0 up to rounding) is a valid representative w of its class in ℝ^{2V}/ℝe
        z, log_det_inv = self.flow.inverse(y)
        log_qc = self._log_q_c(z, log_det_inv)
        m_abs = torch.sqrt(re_m * re_m + im_m * im_m)
        return log_qc + self.modulation.log_prob(alpha) - torch.log(m_abs)

    def angle_density(self, alpha: torch.Tensor) -> torch.Tensor:
        """The learned (or uniform) p_b(α)."""
        return self.modulation.density(alpha)
