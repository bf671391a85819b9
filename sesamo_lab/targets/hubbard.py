"""The Hubbard model in the auxiliary-field spin basis (method.md 4.4; arXiv 1812.09268).

Field phi of shape (N_t, N_x). With delta = beta / N_t, U~ = U delta and E = exp(delta K),

    S[phi] = -log det M[phi, +1] - log det M[phi, -1] + sum_{t,x} phi_{t,x}^2 / (2 U~),
    det M[phi, s] = det(1 + B_{N_t-1} ... B_1 B_0),   B_t = E diag(exp(s phi_t)).

The product of the two determinants is >= 0 on bipartite lattices (particle-hole symmetry gives
det M[phi, -1] = exp(-sum phi) det M[phi, +1]); in general ``action`` uses log|det| and exposes
the sign through ``log_det_one_plus_product``.

Stabilisation (why and how). B_t has singular values spread like exp(+-|phi|); after many
slices the product's singular values range over exp(+-|Phi|), Phi the site time-sums. A plain
float64 product then loses the small scales once exp(|Phi|) ~ 1e16 (|Phi| ~ 37: the
determinant is already wrong by O(1)) and overflows at |Phi| ~ 709. We keep the product as
P = U diag(d) T (U orthogonal, d stored as log|d| and sign, T well conditioned) and fold in
``stabilise_every`` slices at a time:

    A = (B_{t+k-1} ... B_t) U,  columns sorted by |A_j| d_j (pivoting),  A = Q R,
    d' = diag(R) d,  T' = [R_ij d_j / (R_ii d_i)] T,  U' = Q.

Finally det(1 + U D T) = det(1 + D T U) = det(D_big) det(D_big^{-1} + D_small T U) with
D_big = max(|d|, 1), D_small = d / D_big: every entry of the last matrix is O(1), so slogdet is
accurate, and log det D_big is a sum of stored logs (never exponentiated): finite for any Phi.
Cost per configuration and spin: N_t matrix products (N_x^3) plus N_t / k QR decompositions
(~ (4/3) N_x^3 each) and one final slogdet; both spins run as one batch of 2B matrices.
Everything is differentiable (QR and slogdet have autograd rules; pivoting is a gather).

The exact 2-site, N_t = 1 reference (``log_z``, ``sector_masses``) is a tensor-product
Gauss-Legendre quadrature over each quadrant of the (phi_0, phi_1) plane.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import torch

from ..lattices import is_bipartite, validate_hopping
from ..symmetry import BlockFlips, DiscreteSymmetry
from ..validation import ConfigError, positive_float, positive_int
from .base import Target

SPREAD_BUDGET = 20.0


def transfer_matrix(k: torch.Tensor, delta: float) -> torch.Tensor:
    """E = exp(delta K) for symmetric K, via its eigendecomposition (float64)."""
    w, v = torch.linalg.eigh(k.double())
    return (v * torch.exp(delta * w)) @ v.T


def time_blocks(phi: torch.Tensor, max_len: int, max_spread: float = SPREAD_BUDGET) -> list:
    """Split 0..N_t-1 into blocks folded in between QR steps.

    A block ends after ``max_len`` slices or before its accumulated scale spread
    sum_t (max_x phi_t - min_x phi_t) (worst case over the batch) would exceed ``max_spread``:
    the block product's condition number is then below ~exp(max_spread) (e^20 ~ 5e8), so its
    smallest scales keep ~7 of float64's 16 digits. A slice whose own spread exceeds the budget
    forms a block alone (its small scales lose accuracy from ~|phi| > 18; fields of the models
    here stay far below that per slice).
    """
    spread = (phi.amax(-1) - phi.amin(-1)).amax(0).tolist() if phi.shape[0] else []
    blocks, start, acc = [], 0, 0.0
    for t, sp in enumerate(spread):
        if t > start and (t - start >= max_len or acc + sp > max_spread):
            blocks.append((start, t))
            start, acc = t, 0.0
        acc += sp
    blocks.append((start, phi.shape[1]))
    return blocks


def log_det_one_plus_product(
    transfer: torch.Tensor, phi: torch.Tensor, stabilise_every: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sign, log|det(1 + B_{N_t-1} ... B_0)|) with B_t = E diag(exp(phi_t)), batched.

    ``phi``: (batch, N_t, N_x) in float64 (the spin sign already applied). Stabilised UDT product
    as described in the module docstring; blocks of at most ``stabilise_every`` slices, shorter
    where the field is large (``time_blocks``).
    """
    batch, nt, nx = phi.shape
    e = transfer.to(phi)
    eye = torch.eye(nx, dtype=phi.dtype, device=phi.device)
    u = eye.expand(batch, nx, nx)
    t_mat = eye.expand(batch, nx, nx)
    log_d = phi.new_zeros(batch, nx)
    sign_d = phi.new_ones(batch, nx)
    exp_phi = phi.exp()
    upper = torch.triu(torch.ones(nx, nx, dtype=torch.bool, device=phi.device))
    for start, stop in time_blocks(phi.detach(), stabilise_every):
        a = u
        for t in range(start, stop):
            a = e @ (exp_phi[:, t, :].unsqueeze(-1) * a)  # B_t a = E diag(e^phi_t) a
        # Pivot: order columns by their size including the scale d_j they carry.
        col_log_norm = torch.log(a.norm(dim=-2).clamp_min(1e-300)) + log_d
        perm = torch.argsort(col_log_norm, dim=-1, descending=True)
        a = torch.gather(a, -1, perm.unsqueeze(-2).expand(batch, nx, nx))
        log_d = torch.gather(log_d, -1, perm)
        sign_d = torch.gather(sign_d, -1, perm)
        t_mat = torch.gather(t_mat, -2, perm.unsqueeze(-1).expand(batch, nx, nx))
        q, r = torch.linalg.qr(a)
        r_diag = torch.diagonal(r, dim1=-2, dim2=-1)
        # An exactly singular block (only for degenerate, e.g. exactly staggered, fields
        # beyond the precision limit) would give 0/0; a tiny diagonal keeps it finite.
        r_diag = torch.where(r_diag == 0, torch.full_like(r_diag, 1e-300), r_diag)
        # T' = N T with N_ij = R_ij d_j / (R_ii d_i) (upper triangular; |d_j| <= |d_i| mostly).
        ratio = (log_d.unsqueeze(-2) - log_d.unsqueeze(-1)).clamp(max=600.0)
        scale = torch.where(upper, ratio.exp(), torch.zeros_like(ratio))
        sgn = sign_d.unsqueeze(-2) * sign_d.unsqueeze(-1)
        n_mat = r / r_diag.unsqueeze(-1) * scale * sgn
        t_mat = n_mat @ t_mat
        log_d = log_d + torch.log(r_diag.abs())
        sign_d = sign_d * torch.sign(r_diag)
        u = q
    big = log_d.clamp_min(0.0)  # log max(|d|, 1)
    small = sign_d * torch.exp(log_d.clamp_max(0.0))  # d / max(|d|, 1)
    inner = torch.diag_embed(torch.exp(-big)) + small.unsqueeze(-1) * (t_mat @ u)
    sign, logabs = torch.linalg.slogdet(inner)
    return sign, logabs + big.sum(-1)


def naive_log_det_one_plus_product(transfer: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """log|det(1 + prod B_t)| by a plain product: accurate only while |Phi| << 37 (tests)."""
    batch, nt, nx = phi.shape
    p = torch.eye(nx, dtype=phi.dtype).expand(batch, nx, nx)
    for t in range(nt):
        p = transfer.to(phi) @ (phi[:, t, :].exp().unsqueeze(-1) * p)
    return torch.linalg.slogdet(torch.eye(nx, dtype=phi.dtype) + p)[1]


def dense_fermion_matrix(transfer: torch.Tensor, phi_s: torch.Tensor) -> torch.Tensor:
    """The (N_t N_x)^2 block matrix with det = det(1 + B_{N_t-1} ... B_0), for one field.

    Identity blocks on the diagonal, -B_{t-1} below it, +B_{N_t-1} in the top-right corner
    (antiperiodic in time); for N_t = 1 the single block is 1 + B_0.
    """
    nt, nx = phi_s.shape
    blocks = [transfer.to(phi_s) * phi_s[t].exp().unsqueeze(0) for t in range(nt)]
    m = torch.eye(nt * nx, dtype=phi_s.dtype)
    for t in range(nt):
        row = (t + 1) % nt
        sign = -1.0 if t + 1 < nt else 1.0
        m[row * nx : (row + 1) * nx, t * nx : (t + 1) * nx] += sign * blocks[t]
    return m


class HubbardTarget(Target):
    """p(phi) proportional to det M[phi, +1] det M[phi, -1] exp(-sum phi^2 / (2 U~)).

    The action is evaluated in float64 whatever the model's dtype and returned in the input's
    dtype. ``symmetry()`` is the group of site time-line flips (block x = site x).
    """

    def __init__(
        self,
        hopping: torch.Tensor,
        u: float,
        beta: float,
        nt: int,
        stabilise_every: int = 8,
        lattice: str = "custom",
    ):
        super().__init__()
        k = validate_hopping(hopping)
        self.u = positive_float("u", u)
        self.beta = positive_float("beta", beta)
        self.nt = positive_int("nt", nt)
        self.nx = k.shape[0]
        if self.nx > 62:
            raise ConfigError(f"sites must be <= 62 for per-site flips (got {self.nx})")
        self.stabilise_every = positive_int("stabilise_every", stabilise_every)
        self.lattice = lattice
        self.delta = self.beta / self.nt
        self.u_tilde = self.u * self.delta
        self.event_shape = (self.nt, self.nx)
        self.bipartite = is_bipartite(k)
        self.register_buffer("hopping", k)
        # E stays float64 even after .to(float32): the action always runs in float64.
        self._transfer = transfer_matrix(k, self.delta)

    def _apply(self, fn, recurse=True):  # keep the hopping matrix in float64 on any device
        out = super()._apply(fn, recurse)
        dev = self.hopping.device
        self.hopping = self.hopping.to(device=dev, dtype=torch.float64)
        self._transfer = self._transfer.to(dev)
        return out

    def log_dets(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign, log|det M[phi,+1] det M[phi,-1]|) per sample, in float64."""
        phi = x.to(torch.float64).reshape(-1, self.nt, self.nx)
        both = torch.cat([phi, -phi], dim=0)
        sign, logabs = log_det_one_plus_product(self._transfer, both, self.stabilise_every)
        b = phi.shape[0]
        return sign[:b] * sign[b:], logabs[:b] + logabs[b:]

    def action(self, x: torch.Tensor) -> torch.Tensor:
        phi = x.to(torch.float64).reshape(-1, self.nt, self.nx)
        _, logdet = self.log_dets(phi)
        gauss = phi.pow(2).sum((-1, -2)) / (2 * self.u_tilde)
        return (gauss - logdet).to(x.dtype)

    def symmetry(self) -> BlockFlips:
        return site_flips(self.nt, self.nx)

    # ---- references -------------------------------------------------------------------------

    @property
    def has_exact_reference(self) -> bool:
        return self.nx == 2 and self.nt == 1

    @cached_property
    def _quadrature(self) -> tuple[float, torch.Tensor]:
        return two_site_quadrature(self.hopping.cpu(), self.u, self.beta)

    @property
    def log_z(self) -> float | None:
        return self._quadrature[0] if self.has_exact_reference else None

    def sector_masses(self, symmetry: DiscreteSymmetry) -> torch.Tensor | None:
        """Quadrant masses in BlockFlips order (bit x set = site x negative); 2 sites, N_t = 1."""
        if not self.has_exact_reference or not _is_site_flips(symmetry, self.nt, self.nx):
            return None
        return self._quadrature[1].clone()

    @cached_property
    def mean_field(self) -> float:
        """m >= 0 minimising S on uniform fields phi = m (a warm start for the flow's shift)."""
        hi = 2 * self.u_tilde + 4 * math.sqrt(self.u_tilde) + 1.0
        m = torch.linspace(0.0, hi, 801, dtype=torch.float64)
        with torch.no_grad():
            s = torch.cat(
                [self.action(c) for c in m.view(-1, 1, 1).expand(-1, *self.event_shape).split(200)]
            )
        return float(m[torch.argmin(s)])

    def reference_scale(self) -> float:
        return self.mean_field + 2.0 * math.sqrt(self.u_tilde) + 1.0

    def config(self) -> dict:
        return {
            "lattice": self.lattice,
            "sites": self.nx,
            "nt": self.nt,
            "u": self.u,
            "beta": self.beta,
            "stabilise_every": self.stabilise_every,
        }


def site_flips(nt: int, nx: int) -> BlockFlips:
    """(Z2)^{N_x}: flip whole site time-lines; blocks[t, x] = x, Omega: every time-sum >= 0."""
    blocks = torch.arange(nx).expand(nt, nx).clone()
    return BlockFlips(blocks, name=f"Z2^{nx} site flips")


def _is_site_flips(symmetry: DiscreteSymmetry, nt: int, nx: int) -> bool:
    return (
        isinstance(symmetry, BlockFlips)
        and tuple(symmetry.event_shape) == (nt, nx)
        and bool((symmetry.blocks == torch.arange(nx).expand(nt, nx)).all())
    )


def two_site_log_weight(k: torch.Tensor, u: float, beta: float, a, b):
    """-S(a, b) for 2 sites and N_t = 1 in closed form (numpy arrays; float64).

    det(1 + E diag(e^a, e^b)) = 1 + E_00 e^a + E_11 e^b + det(E) e^{a+b}, E = exp(beta K),
    written with log-sum-exp so that large |a|, |b| cannot overflow.
    """
    e = transfer_matrix(k, beta).numpy()
    det_e = float(np.linalg.det(e))
    logs = []
    for s in (1.0, -1.0):
        terms = np.stack(
            np.broadcast_arrays(
                np.zeros_like(a),
                np.log(e[0, 0]) + s * a,
                np.log(e[1, 1]) + s * b,
                np.log(det_e) + s * (a + b),
            )
        )
        top = terms.max(0)
        logs.append(top + np.log(np.exp(terms - top).sum(0)))
    return logs[0] + logs[1] - (a**2 + b**2) / (2 * u * beta)


def two_site_quadrature(
    k: torch.Tensor, u: float, beta: float, nodes: int = 240
) -> tuple[float, torch.Tensor]:
    """(log Z, quadrant masses) of the 2-site, N_t = 1 model by Gauss-Legendre quadrature.

    Each quadrant is integrated on [0, L]^2 with L = U~ + 14 sqrt(U~) + 12 (the integrand is a
    smooth Gaussian-like bump of width ~ sqrt(U~) near |phi| ~ U~; beyond L it is < e^-90 of the
    peak). The integrand is smooth across the axes, so splitting by quadrant costs no accuracy.
    Masses are returned in BlockFlips order u = bit0 (site 0 negative) + 2 bit1 (site 1 negative).
    """
    ut = u * beta
    length = ut + 14 * math.sqrt(ut) + 12
    x, w = np.polynomial.legendre.leggauss(nodes)
    x = 0.5 * length * (x + 1)
    log_w = np.log(0.5 * length * w)
    kk = k.double()
    logs = []
    for bit0, bit1 in ((0, 0), (1, 0), (0, 1), (1, 1)):
        a = (1 - 2 * bit0) * x[:, None]
        b = (1 - 2 * bit1) * x[None, :]
        f = two_site_log_weight(kk, u, beta, a, b) + log_w[:, None] + log_w[None, :]
        top = f.max()
        logs.append(top + math.log(np.exp(f - top).sum()))
    logs_t = torch.tensor(logs, dtype=torch.float64)
    log_z = float(torch.logsumexp(logs_t, 0))
    return log_z, (logs_t - log_z).exp()
