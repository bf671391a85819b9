"""ESS estimators on known answers, and the density self-consistency check."""

import math

import pytest
import torch
from conftest import perturb

from sesamo_lab.flows import realnvp
from sesamo_lab.metrics import density_self_consistency, ess, forward_ess, reverse_kl
from sesamo_lab.models import FlowSampler, SESaMo
from sesamo_lab.modulation import CategoricalModulation
from sesamo_lab.penalty import BijectivityPenalty
from sesamo_lab.symmetry import PlaneRotations
from sesamo_lab.targets.gmm import GaussianMixture


def test_ess_known_answers():
    assert ess(torch.full((100,), 3.7)) == pytest.approx(1.0)
    w = torch.tensor([1.0, 2.0, 3.0])
    assert ess(w.log()) == pytest.approx(36 / 14 / 3)
    half = torch.tensor([0.0, 0.0, -math.inf, -math.inf])
    assert ess(half) == pytest.approx(0.5)
    assert ess(torch.tensor([float("nan"), 0.0])) == pytest.approx(0.5)
    # huge log-weights do not overflow
    assert ess(torch.tensor([1e4, 1e4 + math.log(3)], dtype=torch.float64)) == pytest.approx(
        16 / 10 / 2
    )


def test_forward_ess_known_answers():
    assert forward_ess(torch.zeros(50) + 2.0) == pytest.approx(1.0)
    w = torch.tensor([1.0, 4.0])
    assert forward_ess(w.log()) == pytest.approx(4 / (5 * 1.25))


def test_q_equal_to_p_gives_ess_one_and_zero_kl():
    """A single Gaussian target and the identity flow: q = p exactly."""
    target = GaussianMixture(modes=1, radius=1e-9, sigma=1.0)
    model = FlowSampler(realnvp((2,), couplings=2, hidden=4), (2,))
    with torch.no_grad():
        d = model.draw(5000)
        s = target.action(d.x)
    assert ess(-s - d.log_q) == pytest.approx(1.0, abs=1e-5)
    assert reverse_kl(d.log_q, s, target.log_z) == pytest.approx(0.0, abs=1e-5)


def test_self_consistency_of_a_perturbed_flow():
    torch.manual_seed(0)
    model = FlowSampler(realnvp((2,), couplings=4, hidden=16), (2,)).double()
    perturb(model, 0.1)  # larger perturbations give tails that a Gaussian r cannot cover
    mean, err = density_self_consistency(
        model, GaussianMixture(modes=1, radius=1.0), n=200_000, scale=4.0
    )
    assert err < 0.01
    assert abs(mean - 1) < 4 * err + 1e-3, (mean, err)


def test_self_consistency_of_sesamo_equals_mass_inside_domain():
    """int q = 1 - (prior mass that the flow sends outside Omega), also for an untrained model."""
    torch.manual_seed(1)
    flow = realnvp((2,), couplings=4, hidden=16)
    perturb(flow, 0.2)
    flow.layers[-1].shift.data = torch.tensor([2.0, 0.0])  # mostly inside the Z4 wedge
    model = SESaMo(
        flow,
        PlaneRotations(4),
        CategoricalModulation(4, True, torch.tensor([0.3, -0.2, 0.1, 0.0])),
        BijectivityPenalty(),
    ).double()
    with torch.no_grad():
        inside = 1 - float(model.draw(400_000).outside.double().mean())
    assert 0.5 < inside < 0.99  # a real test: a visible fraction leaves Omega
    mean, err = density_self_consistency(
        model, GaussianMixture(modes=4, radius=3.0), n=200_000, scale=4.0
    )
    assert abs(mean - inside) < 4 * err + 2e-3, (mean, err, inside)


def test_self_consistency_detects_a_wrong_jacobian():
    class Wrong(FlowSampler):
        def log_prob(self, x):
            return super().log_prob(x) + 0.1  # a log-det off by 0.1

    model = Wrong(realnvp((2,), couplings=2, hidden=8), (2,)).double()
    mean, err = density_self_consistency(
        model, GaussianMixture(modes=1, radius=1.0), n=50_000, scale=3.0
    )
    assert abs(mean - math.exp(0.1)) < 5 * err
    assert abs(mean - 1) > 10 * err
