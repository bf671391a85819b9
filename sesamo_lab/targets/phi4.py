"""φ⁴ lattice field theory on a periodic L_t × L_x lattice, real and complex (method.md 4.2, 4.3).

Hopping form (d = 2, μ over the positive directions, periodic boundaries):

    real:     S = Σ_x [ −2κ φ_x Σ_μ φ_{x+μ} + (1 − 2λ) φ_x² + λ φ_x⁴ ] + h Σ_x φ_x
    complex:  φ = a + i b,
              S = Σ_x [ −2κ Σ_μ (a_x a_{x+μ} + b_x b_{x+μ}) + (1 − 2λ)|φ_x|² + λ|φ_x|⁴ ]
                  + h Σ_x (a_x + b_x)

Fields are batched: a real field has shape (batch, L_t, L_x), a complex one (batch, 2, L_t, L_x)
with channel 0 = Re φ and channel 1 = Im φ.

Relation to the (m², λ₀) form S = Σ_x [Σ_μ (φ'_{x+μ} − φ'_x)² + m² φ'² + λ₀ φ'⁴]:
φ' = √κ φ, m² = (1 − 2λ)/κ − 2d, λ₀ = λ/κ² (and h' = h/√κ for the linear term); see
``hopping_to_standard`` and ``standard_to_hopping``.

When is the action bounded below?  Write the quadratic part in lattice momenta p:
S₂ = Σ_p |φ̃_p|² [(1 − 2λ) − 2κ c(p)], c(p) = Σ_μ cos p_μ.  The rule (``check_couplings``):

* λ > 0: bounded below for every finite κ and h (the quartic term wins at large |φ|);
* λ = 0: bounded below iff the Gaussian is normalisable, 1 − 2κ c(p) > 0 for every lattice
  momentum, i.e. −1/(2 |c_min|) < κ < 1/(2d) on the given lattice (|κ| < 1/4 for even sizes, d = 2);
* λ < 0: unbounded below (−λ|φ|⁴ → −∞).
"""

from __future__ import annotations

import math

import torch

from ..symmetry import BlockFlips, DiscreteSymmetry, global_flip
from ..validation import ConfigError, finite_float, positive_int
from .base import Target

DIMENSIONS = 2


def parse_lattice(value: object) -> tuple[int, int]:
    """'8x8', '8', 8, (4, 8) -> (L_t, L_x); both sizes positive integers."""
    if isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"lattice must look like '8x8' or '8' (got {value!r})") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        sizes = [value]
    elif isinstance(value, list | tuple):
        sizes = list(value)
    else:
        raise ConfigError(f"lattice must look like '8x8' or '8' (got {value!r})")
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2:
        raise ConfigError(f"lattice must have two sizes L_t x L_x (got {value!r})")
    lt = positive_int("lattice size L_t", sizes[0])
    lx = positive_int("lattice size L_x", sizes[1])
    return lt, lx


def hopping_to_standard(kappa: float, lam: float, d: int = DIMENSIONS) -> tuple[float, float]:
    """(κ, λ) -> (m², λ₀) with φ' = √κ φ:  m² = (1 − 2λ)/κ − 2d,  λ₀ = λ/κ²  (κ > 0)."""
    if kappa <= 0:
        raise ConfigError(f"kappa must be > 0 for the (m², λ₀) form (got {kappa!r})")
    return (1 - 2 * lam) / kappa - 2 * d, lam / kappa**2


def standard_to_hopping(m2: float, lam0: float, d: int = DIMENSIONS) -> tuple[float, float]:
    """(m², λ₀) -> (κ, λ), the inverse of ``hopping_to_standard``.

    From (2d + m²) κ = 1 − 2λ and λ = λ₀ κ²:  2λ₀ κ² + (2d + m²) κ − 1 = 0, positive root.
    """
    b = 2 * d + m2
    if lam0 == 0:
        if b <= 0:
            raise ConfigError(f"m² must be > -2d when lambda0 = 0 (got {m2!r})")
        kappa = 1 / b
    else:
        kappa = (-b + math.sqrt(b * b + 8 * lam0)) / (4 * lam0)
    return kappa, lam0 * kappa**2


def momentum_cos_range(lt: int, lx: int) -> tuple[float, float]:
    """min and max of c(p) = Σ_μ cos p_μ over the lattice momenta p_μ = 2π n / L_μ."""
    lo = sum(min(math.cos(2 * math.pi * n / size) for n in range(size)) for size in (lt, lx))
    return lo, float(DIMENSIONS)


def check_couplings(kappa: object, lam: object, lt: int, lx: int) -> tuple[float, float]:
    """Validate (κ, λ) against the bounded-below rule of the module docstring."""
    k = finite_float("kappa", kappa)
    la = finite_float("lam", lam)
    if la < 0:
        raise ConfigError(
            f"lam must be >= 0 (the action is unbounded below for lam < 0; got {lam!r})"
        )
    if la == 0:
        c_lo, c_hi = momentum_cos_range(lt, lx)
        # need 1 - 2 kappa c > 0 for all c in [c_lo, c_hi]
        upper = 1 / (2 * c_hi)
        lower = 1 / (2 * c_lo) if c_lo < 0 else -math.inf
        if not lower < k < upper:
            raise ConfigError(
                f"kappa must be in ({lower:.6g}, {upper:.6g}) when lam = 0 (Gaussian case), "
                f"otherwise the action is unbounded below (got {kappa!r})"
            )
    return k, la


def neighbour_sum(phi: torch.Tensor) -> torch.Tensor:
    """Σ_μ φ_{x+μ} over the positive directions; the last two axes are (t, x), periodic."""
    return torch.roll(phi, -1, dims=-2) + torch.roll(phi, -1, dims=-1)


class _Phi4Base(Target):
    complex_field: bool = False

    def __init__(self, lattice: object, kappa: float, lam: float, breaking: float = 0.0):
        super().__init__()
        self.lt, self.lx = parse_lattice(lattice)
        self.kappa, self.lam = check_couplings(kappa, lam, self.lt, self.lx)
        self.breaking = finite_float("breaking", breaking)
        self.volume = self.lt * self.lx
        # Carries dtype and device for .to(); the action itself has no tensors to store.
        self.register_buffer("_dtype_anchor", torch.zeros(()), persistent=False)

    def _local(self, sq: torch.Tensor, hop: torch.Tensor) -> torch.Tensor:
        """Σ_x [−2κ hop + (1−2λ)|φ|² + λ|φ|⁴], with per-site |φ|² = sq and hop = φ·Σ_μ φ_{x+μ}."""
        dens = -2 * self.kappa * hop + (1 - 2 * self.lam) * sq + self.lam * sq * sq
        return dens.reshape(dens.shape[0], -1).sum(-1)

    def magnetisation(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def minimum_field(self) -> float:
        """|φ| at the minimum of the constant-field potential (0 in the symmetric regime)."""
        mass = 1 - 2 * self.lam - 2 * DIMENSIONS * self.kappa
        if mass >= 0 or self.lam == 0:
            return 0.0
        return math.sqrt(-mass / (2 * self.lam))

    def standard_couplings(self) -> tuple[float, float]:
        return hopping_to_standard(self.kappa, self.lam)

    def reference_scale(self) -> float:
        return max(1.0, self.minimum_field() + 1.0)

    def lattice_label(self) -> str:
        return f"{self.lt}x{self.lx}"

    def config(self) -> dict:
        return {
            "lattice": self.lattice_label(),
            "kappa": self.kappa,
            "lam": self.lam,
            "breaking": self.breaking,
        }


class RealPhi4(_Phi4Base):
    """Real scalar φ⁴ with global Z2 φ → −φ, broken by h ≠ 0. Fields: (batch, L_t, L_x)."""

    complex_field = False

    def __init__(self, lattice: object, kappa: float, lam: float, breaking: float = 0.0):
        super().__init__(lattice, kappa, lam, breaking)
        self.event_shape = (self.lt, self.lx)

    def action(self, x: torch.Tensor) -> torch.Tensor:
        sq = x * x
        s = self._local(sq, x * neighbour_sum(x))
        return s + self.breaking * x.reshape(x.shape[0], -1).sum(-1)

    def magnetisation(self, x: torch.Tensor) -> torch.Tensor:
        """M = Σ_x φ_x (real)."""
        return x.reshape(x.shape[0], -1).sum(-1)

    def symmetry(self) -> BlockFlips:
        """Global Z2; Ω = {M ≥ 0}. Exact for h = 0, broken otherwise (sectors still apply)."""
        return global_flip(self.event_shape)

    def sector_masses(self, symmetry: DiscreteSymmetry) -> torch.Tensor | None:
        """Exact only for h = 0 (equal masses, by the symmetry); unknown otherwise."""
        if self.breaking == 0 and isinstance(symmetry, BlockFlips) and symmetry.num_blocks == 1:
            return torch.tensor([0.5, 0.5], dtype=torch.float64)
        return None


class ComplexPhi4(_Phi4Base):
    """Complex φ⁴ with global U(1) φ → e^{iα}φ, broken by h ≠ 0 (preferred arg M = 225° for h > 0).

    Fields: (batch, 2, L_t, L_x). ``symmetry()`` is None: U(1) is continuous, it has no finite list
    of sectors; the SESaMo model for it is ``sesamo_lab.u1.U1SliceSESaMo``.
    """

    complex_field = True

    def __init__(self, lattice: object, kappa: float, lam: float, breaking: float = 0.0):
        super().__init__(lattice, kappa, lam, breaking)
        self.event_shape = (2, self.lt, self.lx)

    def action(self, x: torch.Tensor) -> torch.Tensor:
        sq = (x * x).sum(1)
        hop = (x * neighbour_sum(x)).sum(1)
        s = self._local(sq, hop)
        return s + self.breaking * x.reshape(x.shape[0], -1).sum(-1)

    def magnetisation(self, x: torch.Tensor) -> torch.Tensor:
        """M = Σ_x φ_x as a complex tensor."""
        s = x.reshape(x.shape[0], 2, -1).sum(-1)
        return torch.complex(s[:, 0], s[:, 1])

    def symmetry(self) -> None:
        return None

    def preferred_angle(self) -> float | None:
        """arg M favoured by h: Σ(a + b) = √2 |M| cos(α − π/4) is lowest at α = 5π/4 for h > 0."""
        if self.breaking == 0:
            return None
        return 5 * math.pi / 4 if self.breaking > 0 else math.pi / 4


def make_phi4(
    field: str, lattice: object, kappa: float, lam: float, breaking: float = 0.0
) -> RealPhi4 | ComplexPhi4:
    if field == "real":
        return RealPhi4(lattice, kappa, lam, breaking)
    if field == "complex":
        return ComplexPhi4(lattice, kappa, lam, breaking)
    raise ConfigError(f"unknown field {field!r}; allowed: real, complex")
