"""SESaMo and the plain flow: log_prob through the inverse agrees with the sampling density."""

import torch
from conftest import perturb

from sesamo_lab.flows import realnvp
from sesamo_lab.models import FlowSampler, SESaMo
from sesamo_lab.modulation import CategoricalModulation
from sesamo_lab.penalty import BijectivityPenalty
from sesamo_lab.symmetry import BlockFlips, PlaneRotations


def make_sesamo(symmetry, event_shape, learnable=True, seed=0):
    torch.manual_seed(seed)
    flow = realnvp(event_shape, couplings=4, hidden=16)
    perturb(flow, 0.2, seed)
    logits = torch.randn(symmetry.num_elements) if learnable else None
    mod = CategoricalModulation(symmetry.num_elements, learnable, logits)
    return SESaMo(flow, symmetry, mod, BijectivityPenalty()).double()


def test_sesamo_log_prob_inverts_draw_inside_the_domain(f64):
    model = make_sesamo(PlaneRotations(8), (2,))
    model.flow.layers[-1].shift.data = torch.tensor([6.0, 0.0])
    d = model.draw(2000)
    inside = ~d.outside
    assert inside.sum() > 1000
    torch.testing.assert_close(model.log_prob(d.x[inside]), d.log_q[inside].detach())
    # outside Omega the map is not bijective, and log_prob no longer equals the draw's density
    if (~inside).sum() > 10:
        assert not torch.allclose(model.log_prob(d.x[~inside]), d.log_q[~inside].detach())


def test_sesamo_with_block_flips_on_a_field(f64):
    sym = BlockFlips(torch.tensor([[0, 1, 2]] * 2))
    model = make_sesamo(sym, (2, 3), seed=2)
    model.flow.layers[-1].shift.data = torch.full((2, 3), 2.0)
    d = model.draw(1000)
    inside = ~d.outside
    assert inside.float().mean() > 0.5
    torch.testing.assert_close(model.log_prob(d.x[inside]), d.log_q[inside].detach())
    # the REINFORCE score is log p_b(u) of the sampled element
    assert d.score is not None and d.score.requires_grad


def test_exact_modulation_has_no_score_and_uniform_weights(f64):
    model = make_sesamo(PlaneRotations(4), (2,), learnable=False)
    d = model.draw(10)
    assert d.score is None
    torch.testing.assert_close(model.learned_sector_probs(), torch.full((4,), 0.25))


def test_flow_sampler_log_prob_matches_draw(f64):
    torch.manual_seed(0)
    model = FlowSampler(realnvp((3,), couplings=4, hidden=8), (3,))
    perturb(model, 0.3)
    x, log_q = model.sample_with_log_prob(500)
    torch.testing.assert_close(model.log_prob(x), log_q.detach())
    assert model.learned_sector_probs() is None


def test_models_follow_dtype():
    model = make_sesamo(PlaneRotations(2), (2,)).float()
    x, lq = model.sample_with_log_prob(5)
    assert x.dtype == lq.dtype == torch.float32
