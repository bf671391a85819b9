"""Canonicalization: the symmetric flow baseline that cannot learn a broken symmetry.

A group {T_u} acts on fields with fundamental domain Omega (``symmetry.DiscreteSymmetry``).
The prior q0 = N(0, 1) is invariant under every T_u (all actions in the kit are orthogonal).
Sampling:

    z ~ q0,   u = sector(z),   z' = T_u^{-1} z in Omega,   y = g(z'),   x = T_u(y).

The group element is *chosen from the prior sample* (not drawn from a learnable p_b as in
SESaMo). While the flow keeps Omega inside Omega (g(Omega) subset of Omega, enforced on the
samples by the same bijectivity penalty as SESaMo's), x lies in sector u, the map z -> x is
injective and the density is exact:

    log q(x) = log q0(z) - log|det dg/dz'| - log|det dT_u/dy| + log|det dT_u/dz'|,

evaluated for a given x by u = sector(x), y = T_u^{-1} x, z' = g^{-1}(y), z = T_u z'. A point
whose z' lies outside Omega has no preimage (the flow does not reach it) and gets q(x) = 0, so
``log_prob`` integrates to P(g(z') in Omega) = 1 - (fraction of samples that left Omega).

Why it forces equal sector masses: x is in sector u exactly when z is (as long as y stays in
Omega), and the sectors of a symmetric prior all carry mass 1/K. Equivalently,
q(T_v x) = q(x) for every group element v, whatever the flow's parameters. The model is therefore
exactly invariant and cannot represent a target whose sector masses p_u differ (a broken
symmetry); the best it can do is a perfect fit inside each sector with masses 1/K, which caps
the ESS at 1 / (K sum_u p_u^2) (see ``sesamo_lab.compare.equal_mass_limit``).
"""

from __future__ import annotations

import torch

from ..flows import Flow
from ..models import Draw, SamplingModel
from ..penalty import BijectivityPenalty
from ..prior import StandardNormal
from ..symmetry import DiscreteSymmetry
from ..validation import ConfigError

# A point counts as outside Omega only beyond this many float eps (relative to its size), so a
# canonical image that rounding left a hair outside an edge is not assigned zero density.
_EDGE_TOLERANCE_EPS = 1000.0


class Canonicalized(SamplingModel):
    """x = T_u(g(T_u^{-1} z)) with u = sector(z): an exactly invariant flow (equal masses)."""

    def __init__(self, flow: Flow, symmetry: DiscreteSymmetry, penalty: BijectivityPenalty):
        super().__init__()
        if not isinstance(symmetry, DiscreteSymmetry):
            raise ConfigError(
                "model 'canonical' needs a discrete symmetry group with a fundamental domain "
                f"(got {type(symmetry).__name__})"
            )
        self.event_shape = tuple(symmetry.event_shape)
        self.prior = StandardNormal(self.event_shape)
        self.flow = flow
        self.symmetry = symmetry  # a DiscreteSymmetry, so metrics report its sectors
        self.penalty = penalty

    def canonicalize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z', u) with u = sector(z) and z' = T_u^{-1} z in Omega."""
        u = self.symmetry.sector(z)
        return self.symmetry.act_inverse(z, u), u

    def draw(self, n: int) -> Draw:
        z = self.prior.sample(n)
        z_c, u = self.canonicalize(z)
        y, log_det = self.flow(z_c)
        x = self.symmetry.act(y, u)
        log_q = (
            self.prior.log_prob(z)
            - log_det
            - self.symmetry.log_abs_det(y, u)
            + self.symmetry.log_abs_det(z_c, u)
        )
        constraints = self.symmetry.domain_constraints(y)
        outside = (
            (constraints > 0).any(-1)
            if constraints.shape[-1]
            else torch.zeros_like(log_q, dtype=torch.bool)
        )
        return Draw(x=x, log_q=log_q, penalty=self.penalty(constraints), outside=outside)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        u = self.symmetry.sector(x)
        y = self.symmetry.act_inverse(x, u)
        z_c, log_det_inv = self.flow.inverse(y)
        z = self.symmetry.act(z_c, u)
        log_q = (
            self.prior.log_prob(z)
            + log_det_inv
            - self.symmetry.log_abs_det(y, u)
            + self.symmetry.log_abs_det(z_c, u)
        )
        return torch.where(self._unreachable(z_c), torch.full_like(log_q, -torch.inf), log_q)

    def _unreachable(self, z_c: torch.Tensor) -> torch.Tensor:
        """z' outside Omega: no prior sample is canonicalized there, so q(x) = 0."""
        lam = self.symmetry.domain_constraints(z_c)
        if lam.shape[-1] == 0:
            return torch.zeros(z_c.shape[0], dtype=torch.bool, device=z_c.device)
        size = 1 + z_c.reshape(z_c.shape[0], -1).abs().amax(-1)
        tol = _EDGE_TOLERANCE_EPS * torch.finfo(z_c.dtype).eps * size
        return (lam > tol.unsqueeze(-1)).any(-1)


def build_canonical(spec) -> Canonicalized:
    """Model-kind builder for "canonical" (spec: ``model_kinds.ModelSpec``)."""
    if not isinstance(spec.symmetry, DiscreteSymmetry):
        raise ConfigError(
            "model 'canonical' needs a discrete symmetry group with a fundamental domain; "
            "this target has none"
        )
    return Canonicalized(spec.flow_factory(), spec.symmetry, spec.penalty)
