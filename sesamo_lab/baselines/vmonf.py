"""VMoNF: a variational mixture of normalizing flows (after Pires & Figueiredo, 2020).

K flows g_1 ... g_K share the prior q0 = N(0, 1); a gate with learnable logits a picks one:

    k ~ pi = softmax(a),   z ~ q0,   x = g_k(z),
    q(x) = sum_j pi_j q_j(x),   log q_j(x) = log q0(g_j^{-1}(x)) + log|det d g_j^{-1}/dx|.

The gate is a set of learnable mixture weights (not a network of the prior sample or of x):
for sampling by reverse KL the mixture weights are the only gate quantity the density needs,
and they are what the baseline in the SESaMo paper learns. The density is exact for any x: every
component's inverse is evaluated and combined with a log-sum-exp (``log_prob``).

Gradients of the reverse-KL objective E_q[f], f = log q(x) + S(x):

* Flow parameters theta: the component choice k does not depend on theta, so
  grad_theta E[f] = E_k E_z[d f(g_k(z)) / d theta], the ordinary reparametrised (pathwise)
  gradient, through x = g_k(z) and through every q_j inside the mixture density.
* Gate logits a: k is discrete, so there is no pathwise gradient. With
  grad_a E_{k~pi}[F_k] = E[F_k grad_a log pi_k] + E[grad_a log q] and E_q[grad_a log q] = 0,
  the score-function (REINFORCE) estimator (f - baseline) grad_a log pi_k is unbiased. The draw
  returns log pi_k as ``Draw.score``; ``training.train`` adds the leave-one-out-baseline surrogate
  exactly as for SESaMo's p_b (tested against the exact gradient on a small problem).

Reverse KL is mode seeking: components tend to pile onto the same few modes and the gate
concentrates on them, so a mixture with K smaller than the number of modes still drops modes.
"""

from __future__ import annotations

import torch
from torch import nn

from ..flows import Flow
from ..models import Draw, SamplingModel
from ..prior import StandardNormal
from ..validation import positive_int

# Components used by the "vmonf" model kind. The cost of a training step grows like K + 1 flow
# passes (K inverses for the mixture density), so K is kept small; 4 covers half the modes of the
# Z8 mixture and all four of the Hubbard 2x1 target.
DEFAULT_COMPONENTS = 4


class VMoNF(SamplingModel):
    """Mixture of ``len(flows)`` flows with learnable weights softmax(gate_logits)."""

    def __init__(self, flows: list[Flow], event_shape: tuple[int, ...]):
        super().__init__()
        positive_int("number of mixture components", len(flows))
        self.event_shape = tuple(event_shape)
        self.prior = StandardNormal(self.event_shape)
        self.flows = nn.ModuleList(flows)
        self.gate_logits = nn.Parameter(torch.zeros(len(flows)))

    @property
    def num_components(self) -> int:
        return len(self.flows)

    def mixture_log_weights(self) -> torch.Tensor:
        """log pi_k."""
        return torch.log_softmax(self.gate_logits, dim=-1)

    def mixture_weights(self) -> torch.Tensor:
        return self.mixture_log_weights().exp().detach()

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log q_j(x) for every component j, shape (batch, K)."""
        cols = []
        for flow in self.flows:
            z, log_det_inv = flow.inverse(x)
            cols.append(self.prior.log_prob(z) + log_det_inv)
        return torch.stack(cols, dim=-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_pi = self.mixture_log_weights().to(x.dtype)
        return torch.logsumexp(log_pi + self.component_log_probs(x), dim=-1)

    def draw(self, n: int) -> Draw:
        log_pi = self.mixture_log_weights()
        k = torch.multinomial(log_pi.detach().exp(), n, replacement=True)
        # Samples are i.i.d., so they may be returned grouped by component: each flow runs
        # once, on its own block of the batch.
        k = torch.sort(k).values
        counts = torch.bincount(k, minlength=self.num_components).tolist()
        z = self.prior.sample(n)
        parts = []
        for flow, zj in zip(self.flows, z.split(counts), strict=True):
            parts.append(flow(zj)[0] if zj.shape[0] else zj)
        x = torch.cat(parts)
        log_q = self.log_prob(x)
        zeros = torch.zeros_like(log_q)
        return Draw(x=x, log_q=log_q, penalty=zeros, score=log_pi[k].to(x.dtype))


def build_vmonf(spec, components: int = DEFAULT_COMPONENTS) -> VMoNF:
    """Model-kind builder for "vmonf": K fresh backbones from ``spec.flow_factory``."""
    k = positive_int("vmonf components", components)
    return VMoNF([spec.flow_factory() for _ in range(k)], spec.event_shape)
