"""Stochastic modulation: the distribution p_b(u) over symmetry elements.

Exact symmetries use fixed equal weights; broken ones learn the logits b. Because u is
discrete, b cannot get a pathwise gradient; training uses the score-function (REINFORCE)
estimator, see ``sesamo_lab.training.reinforce_surrogate``.
"""

from __future__ import annotations

import torch
from torch import nn

from .validation import positive_int


class CategoricalModulation(nn.Module):
    """p_b(u) = softmax(b)_u over ``num_elements`` group elements.

    ``learnable=False`` keeps b = 0 fixed (exact symmetry, p = 1/K); ``learnable=True`` makes b a
    parameter (broken symmetry). The paper's Z2 case, a Bernoulli with flip probability e^b, is the
    K = 2 case in a different parametrisation.
    """

    def __init__(self, num_elements: int, learnable: bool, logits: torch.Tensor | None = None):
        super().__init__()
        k = positive_int("number of group elements", num_elements)
        init = torch.zeros(k) if logits is None else torch.as_tensor(logits, dtype=torch.float)
        if init.shape != (k,):
            raise ValueError(f"logits must have shape ({k},), got {tuple(init.shape)}")
        self.learnable = bool(learnable)
        if self.learnable:
            self.logits = nn.Parameter(init.clone())
        else:
            self.register_buffer("logits", init.clone())

    @property
    def num_elements(self) -> int:
        return self.logits.shape[0]

    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits, dim=-1)

    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=-1)

    def sample(self, n: int) -> torch.Tensor:
        return torch.multinomial(self.probs().detach(), n, replacement=True)

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        return self.log_probs()[u]
