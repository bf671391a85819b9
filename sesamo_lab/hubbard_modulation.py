"""p_b(u) for the Hubbard site flips: exact global Z2 times learned flips of site subsets.

The group (Z2)^{N_x} flips whole site time-lines; element u is a bit pattern (bit x set: site x
flipped), as in ``symmetry.BlockFlips``. The global flip phi -> -phi (all bits) is an exact
symmetry, so we write every u as (g, s): g = bit of the last site, s = the first N_x - 1 bits
XOR g (the pattern *relative* to the last site). u and its global flip share s, and

    p(u) = 1/2 p_b(s),      s in {0, 1}^{N_x - 1}.

Two parametrisations of p_b:

* ``SiteFlipTable``: a full categorical table of 2^{N_x - 1} logits (the reference code's
  choice; 131,072 logits for 18 sites). Allowed up to ``MAX_TABLE_BITS`` = 16 flipped sites
  (65,536 logits): beyond that one REINFORCE batch touches a vanishing fraction of the table.
* ``SiteFlipBernoulli``: independent Bernoulli flips per site, p_b(s) = prod_j p_j^{s_j}
  (1 - p_j)^{1 - s_j} with p_j = sigmoid(b_j): N_x - 1 parameters, any N_x <= 62. It cannot
  express correlations between the flips (e.g. a preferred Neel pattern relative to the last
  site is expressible, correlated pairs are not).

Both share the duck-typed interface of ``modulation.CategoricalModulation``: ``num_elements``,
``learnable``, ``sample(n)``, ``log_prob(u)``, ``probs()``, ``log_probs()``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .validation import ConfigError, positive_int

MAX_TABLE_BITS = 16


def split_element(u: torch.Tensor, sites: int) -> tuple[torch.Tensor, torch.Tensor]:
    """u -> (g, s): g the last site's bit, s the other bits relative to it."""
    g = (u >> (sites - 1)) & 1
    rest = u & ((1 << (sites - 1)) - 1)
    s = torch.where(g.bool(), rest ^ ((1 << (sites - 1)) - 1), rest)
    return g, s


def join_element(g: torch.Tensor, s: torch.Tensor, sites: int) -> torch.Tensor:
    """(g, s) -> u, the inverse of ``split_element``."""
    mask = (1 << (sites - 1)) - 1
    return torch.where(g.bool(), (s ^ mask) | (1 << (sites - 1)), s)


class _SiteFlipModulation(nn.Module):
    def __init__(self, sites: int, learnable: bool):
        super().__init__()
        self.sites = positive_int("sites", sites)
        if self.sites > 62:
            raise ConfigError(f"sites must be <= 62 for per-site flips (got {self.sites})")
        self.learnable = bool(learnable)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def num_elements(self) -> int:
        return 2**self.sites

    @property
    def num_subsets(self) -> int:
        return 2 ** (self.sites - 1)

    # subclasses: subset_log_prob(s), sample_subsets(n), subset_log_probs()
    def subset_log_prob(self, s: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample_subsets(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def subset_log_probs(self) -> torch.Tensor:
        s = torch.arange(self.num_subsets, device=self._anchor.device)
        return self.subset_log_prob(s)

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        _, s = split_element(u, self.sites)
        return self.subset_log_prob(s) - math.log(2)

    def sample(self, n: int) -> torch.Tensor:
        s = self.sample_subsets(n)
        g = torch.randint(0, 2, (n,), device=s.device)
        return join_element(g, s, self.sites)

    def log_probs(self) -> torch.Tensor:
        """log p(u) for every u = 0 .. 2^{N_x} - 1 (2^{N_x} entries: keep N_x moderate)."""
        u = torch.arange(self.num_elements, device=self._anchor.device)
        return self.log_prob(u)

    def probs(self) -> torch.Tensor:
        return self.log_probs().exp()


class SiteFlipTable(_SiteFlipModulation):
    """p_b(s) = softmax(b)_s over all 2^{N_x - 1} subsets (N_x - 1 <= MAX_TABLE_BITS)."""

    def __init__(self, sites: int, learnable: bool = True):
        super().__init__(sites, learnable)
        if self.sites - 1 > MAX_TABLE_BITS:
            raise ConfigError(
                f"sector_model 'table' needs 2^{self.sites - 1} logits for {self.sites} sites; "
                f"the full table is allowed up to {MAX_TABLE_BITS + 1} sites "
                f"(2^{MAX_TABLE_BITS} logits): use --sector-model bernoulli"
            )
        init = torch.zeros(self.num_subsets)
        if self.learnable:
            self.logits = nn.Parameter(init)
        else:
            self.register_buffer("logits", init)

    def subset_log_prob(self, s):
        return torch.log_softmax(self.logits, -1)[s]

    def subset_log_probs(self):
        return torch.log_softmax(self.logits, -1)

    def sample_subsets(self, n):
        p = torch.softmax(self.logits.detach(), -1)
        return torch.multinomial(p, n, replacement=True)


class SiteFlipBernoulli(_SiteFlipModulation):
    """p_b(s) = prod_j Bernoulli(s_j; sigmoid(b_j)): one flip probability per site j < N_x - 1."""

    def __init__(self, sites: int, learnable: bool = True):
        super().__init__(sites, learnable)
        init = torch.zeros(self.sites - 1)
        if self.learnable:
            self.logits = nn.Parameter(init)
        else:
            self.register_buffer("logits", init)

    def _bits(self, s: torch.Tensor) -> torch.Tensor:
        shifts = torch.arange(self.sites - 1, device=s.device)
        return ((s.unsqueeze(-1) >> shifts) & 1).to(self.logits.dtype)

    def subset_log_prob(self, s):
        bits = self._bits(s)
        logp1 = nn.functional.logsigmoid(self.logits)
        logp0 = nn.functional.logsigmoid(-self.logits)
        return (bits * logp1 + (1 - bits) * logp0).sum(-1)

    def sample_subsets(self, n):
        p = torch.sigmoid(self.logits.detach())
        bits = torch.bernoulli(p.expand(n, -1)).long()
        weights = 2 ** torch.arange(self.sites - 1, device=bits.device)
        return (bits * weights).sum(-1)

    def flip_probs(self) -> torch.Tensor:
        """Probability that site j is flipped relative to the last site, j < N_x - 1."""
        return torch.sigmoid(self.logits.detach())


SECTOR_MODELS = ("auto", "table", "bernoulli")


def site_flip_modulation(sites: int, learnable: bool, kind: str = "auto") -> _SiteFlipModulation:
    """'table' up to MAX_TABLE_BITS + 1 sites, else 'bernoulli'; 'auto' picks accordingly."""
    if kind not in SECTOR_MODELS:
        raise ConfigError(f"unknown sector_model {kind!r}; allowed: {', '.join(SECTOR_MODELS)}")
    if kind == "auto":
        kind = "table" if sites - 1 <= MAX_TABLE_BITS else "bernoulli"
    cls = SiteFlipTable if kind == "table" else SiteFlipBernoulli
    return cls(sites, learnable)
