"""Sampling models: a plain flow, and SESaMo = flow + bijectivity penalty + stochastic modulation.

Every model offers ``sample(n)``, ``sample_with_log_prob(n)``, ``log_prob(x)`` and, for
training, ``draw(n)``, which also returns the terms that the training objective needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .flows import Flow
from .modulation import CategoricalModulation
from .penalty import BijectivityPenalty
from .prior import StandardNormal
from .symmetry import DiscreteSymmetry


@dataclass
class Draw:
    """One batch from a model, with everything the reverse-KL objective needs.

    x:        samples, shape (batch, *event_shape)
    log_q:    log q(x), differentiable w.r.t. the flow parameters (reparametrised)
    penalty:  bijectivity penalty per sample (zeros for models without a domain)
    score:    log-probability of the discrete choices made while sampling (e.g. log p_b(u)),
              carrying the gradient for the REINFORCE term; None when nothing discrete is learned
    outside:  samples whose pre-modulation output left Omega (None for models without a domain)
    """

    x: torch.Tensor
    log_q: torch.Tensor
    penalty: torch.Tensor
    score: torch.Tensor | None = None
    outside: torch.Tensor | None = None


class SamplingModel(nn.Module):
    """Shared interface; subclasses implement ``draw`` and ``log_prob``."""

    event_shape: tuple[int, ...]

    def draw(self, n: int) -> Draw:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample_with_log_prob(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.draw(n)
        return d.x, d.log_q

    def sample(self, n: int) -> torch.Tensor:
        return self.draw(n).x

    def learned_sector_probs(self) -> torch.Tensor | None:
        """p_b(u) where the model has a modulation, else None."""
        return None

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class FlowSampler(SamplingModel):
    """A plain normalizing flow x = g(z), z ~ N(0, 1): the mode-collapsing baseline."""

    def __init__(self, flow: Flow, event_shape: tuple[int, ...]):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.prior = StandardNormal(self.event_shape)
        self.flow = flow

    def draw(self, n: int) -> Draw:
        z = self.prior.sample(n)
        x, log_det = self.flow(z)
        log_q = self.prior.log_prob(z) - log_det
        return Draw(x=x, log_q=log_q, penalty=torch.zeros_like(log_q))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det_inv = self.flow.inverse(x)
        return self.prior.log_prob(z) + log_det_inv


class SESaMo(SamplingModel):
    """Symmetry-enforcing stochastic modulation (Kreit et al., arXiv 2505.19619).

        z ~ q0,  y = g(z) in Omega,  u ~ p_b(u),  x = T_u(y),
        log q(x) = log q0(z) - log|det dg/dz| + log p_b(u) - log|det dT_u/dy|.

    The density is exact while y stays in Omega; the penalty keeps it there. ``log_prob(x)``
    finds the sector u of x, inverts T_u and then the flow.
    """

    def __init__(
        self,
        flow: Flow,
        symmetry: DiscreteSymmetry,
        modulation: CategoricalModulation,
        penalty: BijectivityPenalty,
    ):
        super().__init__()
        if modulation.num_elements != symmetry.num_elements:
            raise ValueError(
                f"modulation has {modulation.num_elements} elements but the symmetry group "
                f"{symmetry.name} has {symmetry.num_elements}"
            )
        self.event_shape = tuple(symmetry.event_shape)
        self.prior = StandardNormal(self.event_shape)
        self.flow = flow
        self.symmetry = symmetry
        self.modulation = modulation
        self.penalty = penalty

    def draw(self, n: int) -> Draw:
        z = self.prior.sample(n)
        y, log_det = self.flow(z)
        u = self.modulation.sample(n)
        x = self.symmetry.act(y, u)
        log_pu = self.modulation.log_prob(u).to(y.dtype)
        log_q = self.prior.log_prob(z) - log_det + log_pu - self.symmetry.log_abs_det(y, u)
        constraints = self.symmetry.domain_constraints(y)
        outside = (constraints > 0).any(-1) if constraints.shape[-1] else None
        return Draw(
            x=x,
            log_q=log_q,
            penalty=self.penalty(constraints),
            score=log_pu if self.modulation.learnable else None,
            outside=outside if outside is not None else torch.zeros_like(log_q, dtype=bool),
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        u = self.symmetry.sector(x)
        y = self.symmetry.act_inverse(x, u)
        z, log_det_inv = self.flow.inverse(y)
        log_pu = self.modulation.log_prob(u).to(x.dtype)
        return self.prior.log_prob(z) + log_det_inv + log_pu - self.symmetry.log_abs_det(y, u)

    def learned_sector_probs(self) -> torch.Tensor:
        return self.modulation.probs().detach()
