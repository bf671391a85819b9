"""Site-flip modulation: normalisation, exact global Z2, log_prob, sampling, size limits."""

import math

import pytest
import torch

from sesamo_lab.hubbard_modulation import (
    MAX_TABLE_BITS,
    SiteFlipBernoulli,
    SiteFlipTable,
    join_element,
    site_flip_modulation,
    split_element,
)
from sesamo_lab.validation import ConfigError


def randomised(mod, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mod.logits.copy_(torch.randn(mod.logits.shape, generator=g))
    return mod


@pytest.mark.parametrize("sites", [1, 2, 3, 5])
def test_split_and_join_are_inverse_and_global_flip_keeps_the_subset(sites):
    u = torch.arange(2**sites)
    g, s = split_element(u, sites)
    assert torch.equal(join_element(g, s, sites), u)
    flipped = u ^ (2**sites - 1)
    g2, s2 = split_element(flipped, sites)
    assert torch.equal(s2, s) and torch.equal(g2, 1 - g)


@pytest.mark.parametrize("cls", [SiteFlipTable, SiteFlipBernoulli])
@pytest.mark.parametrize("sites", [2, 4, 6])
def test_probabilities_normalised_flip_pairs_equal_log_prob_consistent(cls, sites):
    mod = randomised(cls(sites, learnable=True), seed=sites)
    p = mod.probs()
    assert p.shape == (2**sites,)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6)
    u = torch.arange(2**sites)
    torch.testing.assert_close(p, p[u ^ (2**sites - 1)])  # exact global Z2
    torch.testing.assert_close(mod.log_prob(u), p.log())
    torch.testing.assert_close(mod.subset_log_probs().exp().sum(), torch.tensor(1.0))
    assert p.std() > 1e-3  # the subsets really are weighted differently


@pytest.mark.parametrize("cls", [SiteFlipTable, SiteFlipBernoulli])
def test_sampling_frequencies_follow_probs(cls):
    torch.manual_seed(0)
    mod = randomised(cls(3, learnable=True), seed=1)
    n = 40_000
    counts = torch.bincount(mod.sample(n), minlength=8).double()
    p = mod.probs().double().detach()
    # each count within 5 binomial standard deviations
    assert torch.all((counts - n * p).abs() <= 5 * (n * p * (1 - p)).sqrt() + 1)


def test_bernoulli_matches_independent_flips():
    mod = randomised(SiteFlipBernoulli(4), seed=3)
    q = mod.flip_probs()
    s = torch.tensor([0b101])  # sites 0 and 2 flipped relative to site 3, site 1 not
    expected = math.log(q[0] * (1 - q[1]) * q[2])
    assert mod.subset_log_prob(s).item() == pytest.approx(expected, rel=1e-5)


def test_exact_modulation_is_uniform_and_has_no_parameters():
    for cls in (SiteFlipTable, SiteFlipBernoulli):
        mod = cls(3, learnable=False)
        assert not list(mod.parameters())
        torch.testing.assert_close(mod.probs(), torch.full((8,), 1 / 8))


def test_table_size_limit_and_auto_choice():
    sites = MAX_TABLE_BITS + 2
    with pytest.raises(ConfigError, match="sector.model.*bernoulli"):
        site_flip_modulation(sites, True, "table")
    assert isinstance(site_flip_modulation(sites, True, "auto"), SiteFlipBernoulli)
    assert isinstance(site_flip_modulation(MAX_TABLE_BITS + 1, True, "auto"), SiteFlipTable)
    with pytest.raises(ConfigError, match="sector_model"):
        site_flip_modulation(4, True, "neural")


def test_reinforce_gradient_of_table_matches_exact_gradient():
    """E_u[f(u) d log p(u)] equals d E_u[f(u)] for the flip-pair parametrisation."""
    torch.manual_seed(0)
    mod = randomised(SiteFlipTable(3), seed=4)
    f = torch.randn(8, dtype=torch.float64)
    exact_loss = (mod.probs().double() * f).sum()
    (exact,) = torch.autograd.grad(exact_loss, mod.logits)
    p = mod.probs().detach().double()
    surrogate = (p * f * mod.log_prob(torch.arange(8)).double()).sum()  # expectation, no noise
    (score,) = torch.autograd.grad(surrogate, mod.logits)
    torch.testing.assert_close(score, exact, rtol=1e-5, atol=1e-6)
