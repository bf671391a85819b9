"""Baselines: canonicalization (exact invariance, exact density) and VMoNF (mixture density,
gradient estimator)."""

import math

import pytest
import torch
from conftest import perturb

from sesamo_lab.baselines import Canonicalized, VMoNF, build_canonical, build_vmonf
from sesamo_lab.flows import ElementwiseAffine, Flow, realnvp
from sesamo_lab.metrics import density_self_consistency
from sesamo_lab.model_kinds import ModelSpec, build_model
from sesamo_lab.models import FlowSampler
from sesamo_lab.penalty import BijectivityPenalty
from sesamo_lab.presets import get_family, get_preset
from sesamo_lab.symmetry import BlockFlips, PlaneRotations, global_flip
from sesamo_lab.targets.gmm import GaussianMixture
from sesamo_lab.training import reinforce_surrogate
from sesamo_lab.validation import ConfigError

SYMMETRIES = {
    "Z8 rotations": lambda: PlaneRotations(8),
    "global Z2 on 2x2": lambda: global_flip((2, 2)),
    "site flips 2x3": lambda: BlockFlips(torch.tensor([[0, 1, 2], [0, 1, 2]])),
}


def canonical_model(name: str, seed: int = 0, scale: float = 0.15) -> Canonicalized:
    torch.manual_seed(seed)
    sym = SYMMETRIES[name]()
    flow = realnvp(sym.event_shape, couplings=4, hidden=16)
    perturb(flow, scale=scale, seed=seed)
    return Canonicalized(flow, sym, BijectivityPenalty()).double()


@pytest.mark.parametrize("name", list(SYMMETRIES))
def test_canonical_log_prob_inverts_sampling(name, f64):
    model = canonical_model(name)
    torch.manual_seed(1)
    d = model.draw(4000)
    inside = ~d.outside
    assert inside.float().mean() > 0.2
    lp = model.log_prob(d.x)
    torch.testing.assert_close(lp[inside], d.log_q[inside], atol=1e-8, rtol=1e-8)
    # the chosen element is the sector of the prior sample and of the output alike
    sym = model.symmetry
    y = sym.act_inverse(d.x, sym.sector(d.x))
    assert not sym.outside(y).any()


@pytest.mark.parametrize("name", list(SYMMETRIES))
def test_canonical_density_is_exactly_invariant(name, f64):
    """q(T_v x) = q(x) for every v, whatever the flow: hence all sector masses are 1/K."""
    model = canonical_model(name, seed=3)
    sym = model.symmetry
    x = 2.0 * torch.randn(500, *sym.event_shape)
    lp = model.log_prob(x)
    finite = torch.isfinite(lp)
    assert finite.float().mean() > 0.5
    for v in range(sym.num_elements):
        lv = model.log_prob(sym.act(x, torch.full((500,), v)))
        assert torch.equal(torch.isfinite(lv), finite)
        torch.testing.assert_close(lv[finite], lp[finite], atol=1e-9, rtol=1e-9)


def test_canonical_sector_masses_equal_even_after_training_on_broken_target(f64):
    """Training on a tilted mixture cannot move mass between sectors (p_u differ by 5x)."""
    from sesamo_lab.training import TrainConfig, train

    target = GaussianMixture(8, 12.0, 1.0, 0.05).double()
    model = Canonicalized(
        realnvp((2,), couplings=4, hidden=16), PlaneRotations(8), BijectivityPenalty(1000.0, 1.0)
    ).double()
    train(model, target, TrainConfig(steps=30, batch_size=256, lr=3e-3, seed=0))
    torch.manual_seed(2)
    d = model.draw(30_000)
    u = model.symmetry.sector(d.x[~d.outside])
    freq = torch.bincount(u, minlength=8).double() / u.numel()
    sd = math.sqrt(0.125 * 0.875 / u.numel())
    assert (freq - 0.125).abs().max() < 5 * sd
    masses = target.sector_masses(PlaneRotations(8))
    assert masses.max() / masses.min() > 4  # the target's masses are far from equal


@pytest.mark.parametrize("name", ["Z8 rotations", "site flips 2x3"])
def test_canonical_density_integrates_to_mass_inside(name, f64):
    """int q = P(flow output in Omega): one minus the fraction of samples that left Omega."""
    model = canonical_model(name, seed=5, scale=0.3)
    torch.manual_seed(4)
    out = torch.cat([model.draw(20_000).outside for _ in range(3)]).double()
    leave, leave_err = float(out.mean()), float(out.std() / math.sqrt(out.numel()))
    assert leave > 0.02  # the check below is discriminating: plenty of mass leaves Omega
    torch.manual_seed(6)
    mean, err = density_self_consistency(model, None, n=120_000, scale=3.0)
    assert abs(mean - (1 - leave)) < 4 * math.hypot(err, leave_err)


def test_canonical_refuses_targets_without_a_discrete_group():
    spec = ModelSpec((2,), lambda: realnvp((2,)), None, False, BijectivityPenalty())
    with pytest.raises(ConfigError, match="canonical"):
        build_canonical(spec)
    with pytest.raises(ConfigError, match="canonical"):
        build_model("canonical", spec)


# ---- VMoNF -----------------------------------------------------------------------------------


def vmonf_model(k: int = 3, seed: int = 0) -> VMoNF:
    torch.manual_seed(seed)
    flows = [realnvp((2,), couplings=3, hidden=16) for _ in range(k)]
    for j, f in enumerate(flows):
        perturb(f, scale=0.2, seed=seed + j)
    model = VMoNF(flows, (2,)).double()
    with torch.no_grad():
        model.gate_logits.copy_(torch.linspace(-1.0, 1.0, k))
    return model


def test_vmonf_log_prob_is_the_mixture_formula(f64):
    model = vmonf_model()
    x = 3 * torch.randn(300, 2)
    pi = torch.softmax(model.gate_logits.detach(), 0)
    mix = sum(pi[j] * FlowSampler(f, (2,)).log_prob(x).exp() for j, f in enumerate(model.flows))
    torch.testing.assert_close(model.log_prob(x), mix.log())


def test_vmonf_sampling_matches_its_density(f64):
    model = vmonf_model()
    torch.manual_seed(1)
    d = model.draw(30_000)
    torch.testing.assert_close(d.log_q, model.log_prob(d.x))
    # the component chosen for each sample follows pi (score = log pi_k)
    log_pi = model.mixture_log_weights().detach()
    k = (d.score.detach().unsqueeze(-1) - log_pi).abs().argmin(-1)
    freq = torch.bincount(k, minlength=3).double() / k.numel()
    sd = (log_pi.exp() * (1 - log_pi.exp()) / k.numel()).sqrt()
    assert ((freq - log_pi.exp()).abs() < 5 * sd).all()
    # and the samples from component k are that flow's outputs: q_k(x) is finite and large
    torch.manual_seed(2)
    mean, err = density_self_consistency(model, None, n=40_000, scale=3.0)
    assert abs(mean - 1) < 4 * err


def _gate_gradient(model: VMoNF, target, n: int, reinforce: bool) -> torch.Tensor:
    model.gate_logits.grad = None
    d = model.draw(n)
    f = d.log_q + target.action(d.x)
    loss = f.mean() + (reinforce_surrogate(f, d.score) if reinforce else 0)
    loss.backward()
    return model.gate_logits.grad.detach().clone()


def test_vmonf_gate_gradient_matches_exact(f64):
    """REINFORCE + direct term vs the exact grad_a E_q[f] = sum_k (grad_a pi_k) F_k.

    E_q[grad_a log q] = 0, so only the choice of k contributes; F_k = E_z[f(g_k(z))] is
    estimated by a large Monte Carlo average per component.
    """
    target = GaussianMixture(2, 3.0, 1.0, 0.0).double()
    flows = []
    for shift, log_scale in (((3.0, 0.0), 0.0), ((-1.0, 2.0), 0.5)):
        layer = ElementwiseAffine((2,))
        with torch.no_grad():
            layer.shift.copy_(torch.tensor(shift))
            layer.log_scale.fill_(log_scale)
        flows.append(Flow([layer]))
    model = VMoNF(flows, (2,)).double()
    with torch.no_grad():
        model.gate_logits.copy_(torch.tensor([0.3, -0.2]))
    torch.manual_seed(0)
    pi = torch.softmax(model.gate_logits.detach(), 0)
    f_k, f_err = [], []
    with torch.no_grad():
        for flow in model.flows:
            x = flow(torch.randn(400_000, 2))[0]
            f = model.log_prob(x) + target.action(x)
            f_k.append(f.mean())
            f_err.append(f.std() / math.sqrt(f.numel()))
    f_k, f_err = torch.stack(f_k), torch.stack(f_err)
    jac = torch.diag(pi) - torch.outer(pi, pi)  # d pi_k / d a_j
    exact = jac @ f_k
    exact_err = (jac**2 @ f_err**2).sqrt()
    with_rf = torch.stack([_gate_gradient(model, target, 4000, True) for _ in range(50)])
    without = torch.stack([_gate_gradient(model, target, 4000, False) for _ in range(50)])
    est, est_err = with_rf.mean(0), with_rf.std(0) / math.sqrt(50)
    tol = 4 * (est_err**2 + exact_err**2).sqrt()
    assert exact.abs().min() > 10 * tol.max()  # a clearly non-zero gradient to recover
    assert ((est - exact).abs() < tol).all()
    # without the score-function term the estimate is wrong (its mean is zero)
    assert ((without.mean(0) - exact).abs() > 10 * tol).all()


def test_vmonf_builder_uses_fresh_backbones():
    spec = ModelSpec((2,), lambda: realnvp((2,), couplings=2, hidden=8), None, False, None)
    model = build_vmonf(spec, components=3)
    assert model.num_components == 3
    ids = {id(p) for f in model.flows for p in f.parameters()}
    assert len(ids) == 3 * len(list(model.flows[0].parameters()))
    with pytest.raises(ConfigError):
        build_vmonf(spec, components=0)


@pytest.mark.parametrize("kind", ["sesamo", "realnvp", "canonical", "vmonf"])
def test_every_kind_shares_the_interface_on_a_preset(kind):
    preset = get_preset("gmm-z8-broken")
    family = get_family(preset.family)
    target = family.build_target(preset.params)
    model = family.build_model(kind, target, preset.params)
    x, log_q = model.sample_with_log_prob(64)
    assert x.shape == (64, 2) and log_q.shape == (64,)
    assert model.sample(5).shape == (5, 2)
    assert torch.isfinite(model.log_prob(x)).all()
