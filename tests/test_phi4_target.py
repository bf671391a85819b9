"""φ⁴ actions: against a naive loop, symmetries, the (m², λ₀) mapping, input validation."""

import math

import pytest
import torch

from sesamo_lab.presets import get_family
from sesamo_lab.runner import prepare_run
from sesamo_lab.targets.phi4 import (
    ComplexPhi4,
    RealPhi4,
    hopping_to_standard,
    parse_lattice,
    standard_to_hopping,
)
from sesamo_lab.validation import ConfigError


def naive_real_action(phi, kappa, lam, h):
    lt, lx = phi.shape
    s = 0.0
    for t in range(lt):
        for x in range(lx):
            p = float(phi[t, x])
            nb = float(phi[(t + 1) % lt, x]) + float(phi[t, (x + 1) % lx])
            s += -2 * kappa * p * nb + (1 - 2 * lam) * p * p + lam * p**4 + h * p
    return s


def naive_complex_action(phi, kappa, lam, h):
    _, lt, lx = phi.shape
    s = 0.0
    for t in range(lt):
        for x in range(lx):
            a, b = float(phi[0, t, x]), float(phi[1, t, x])
            hop = 0.0
            for tt, xx in (((t + 1) % lt, x), (t, (x + 1) % lx)):
                hop += a * float(phi[0, tt, xx]) + b * float(phi[1, tt, xx])
            r2 = a * a + b * b
            s += -2 * kappa * hop + (1 - 2 * lam) * r2 + lam * r2 * r2 + h * (a + b)
    return s


@pytest.mark.parametrize("lattice", ["3x5", "4x4", "1x3", "2x2"])
def test_real_action_matches_naive_loop(lattice):
    torch.manual_seed(0)
    t = RealPhi4(lattice, 0.27, 0.03, 0.05).double()
    x = 1.5 * torch.randn(4, *t.event_shape, dtype=torch.float64)
    got = t.action(x)
    for i in range(4):
        assert got[i].item() == pytest.approx(naive_real_action(x[i], 0.27, 0.03, 0.05), rel=1e-12)


@pytest.mark.parametrize("lattice", ["3x5", "4x4", "2x1"])
def test_complex_action_matches_naive_loop(lattice):
    torch.manual_seed(1)
    t = ComplexPhi4(lattice, 0.31, 0.02, -0.07).double()
    x = 1.5 * torch.randn(3, *t.event_shape, dtype=torch.float64)
    got = t.action(x)
    for i in range(3):
        want = naive_complex_action(x[i], 0.31, 0.02, -0.07)
        assert got[i].item() == pytest.approx(want, rel=1e-12)


def test_real_action_symmetries():
    torch.manual_seed(2)
    t = RealPhi4("4x6", 0.3, 0.02, 0.0)
    x = torch.randn(5, 4, 6, dtype=torch.float64)
    s = t.action(x)
    torch.testing.assert_close(t.action(-x), s)
    for shift, dim in ((1, 1), (3, 2), (2, 1)):
        torch.testing.assert_close(t.action(torch.roll(x, shift, dims=dim)), s)
    # h breaks the flip: S(-x) - S(x) = -2 h M
    tb = RealPhi4("4x6", 0.3, 0.02, 0.1)
    torch.testing.assert_close(tb.action(-x) - tb.action(x), -2 * 0.1 * x.reshape(5, -1).sum(-1))


def test_complex_action_phase_and_translation_invariance():
    torch.manual_seed(3)
    t = ComplexPhi4("4x4", 0.3, 0.02, 0.0)
    x = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    s = t.action(x)
    for angle in (0.3, 1.0, math.pi, 4.0):
        c, sn = math.cos(angle), math.sin(angle)
        rot = torch.stack([c * x[:, 0] - sn * x[:, 1], sn * x[:, 0] + c * x[:, 1]], dim=1)
        torch.testing.assert_close(t.action(rot), s)
    torch.testing.assert_close(t.action(torch.roll(x, (1, 3), dims=(2, 3))), s)
    # with h the phase 225 degrees is favoured over 45 degrees at equal |M|
    tb = ComplexPhi4("4x4", 0.3, 0.02, 0.05)
    y = torch.full((1, 2, 4, 4), 1.0, dtype=torch.float64)
    assert tb.action(-y) < tb.action(y)
    assert tb.preferred_angle() == pytest.approx(5 * math.pi / 4)


def standard_action(phi_p, m2, lam0, h_p):
    grad = sum((torch.roll(phi_p, -1, d) - phi_p) ** 2 for d in (1, 2))
    dens = grad + m2 * phi_p**2 + lam0 * phi_p**4 + h_p * phi_p
    return dens.reshape(phi_p.shape[0], -1).sum(-1)


@pytest.mark.parametrize("kappa,lam", [(0.3, 0.02), (0.2, 0.5), (0.2, 0.0)])
def test_standard_form_mapping(kappa, lam):
    m2, lam0 = hopping_to_standard(kappa, lam)
    assert m2 == pytest.approx((1 - 2 * lam) / kappa - 4)
    assert lam0 == pytest.approx(lam / kappa**2)
    k2, l2 = standard_to_hopping(m2, lam0)
    assert (k2, l2) == pytest.approx((kappa, lam))
    # same action with phi' = sqrt(kappa) phi, h' = h / sqrt(kappa)
    torch.manual_seed(4)
    h = 0.07
    phi = torch.randn(4, 5, 3, dtype=torch.float64)
    t = RealPhi4("5x3", kappa, lam, h)
    want = standard_action(math.sqrt(kappa) * phi, m2, lam0, h / math.sqrt(kappa))
    torch.testing.assert_close(t.action(phi), want)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"lattice": "0x4"}, "L_t"),
        ({"lattice": "4x-2"}, "L_x"),
        ({"lattice": "abc"}, "lattice"),
        ({"lam": -0.1}, "lam"),
        ({"lam": 0.0, "kappa": 0.3}, "kappa"),
        ({"kappa": float("nan")}, "kappa"),
        ({"breaking": float("inf")}, "breaking"),
    ],
)
def test_invalid_parameters_name_the_parameter(kwargs, name):
    args = {"lattice": "4x4", "kappa": 0.3, "lam": 0.02, "breaking": 0.0, **kwargs}
    with pytest.raises(ConfigError, match=name):
        RealPhi4(args["lattice"], args["kappa"], args["lam"], args["breaking"])


def test_gaussian_limit_rule():
    # lam = 0 is allowed only while the quadratic form is positive definite: |kappa| < 1/4
    RealPhi4("4x4", 0.24, 0.0)
    RealPhi4("4x4", -0.24, 0.0)
    with pytest.raises(ConfigError, match="kappa"):
        RealPhi4("4x4", 0.25, 0.0)
    # odd lattice: c_min = 2 cos(4 pi / 5) > -2, so a slightly larger negative kappa is fine
    RealPhi4("5x5", -0.3, 0.0)
    assert parse_lattice("8") == (8, 8) and parse_lattice("4x8") == (4, 8)


def test_symmetry_the_field_lacks_is_refused():
    with pytest.raises(ConfigError, match="symmetry"):
        prepare_run("scalar-phi4-broken-4x4", overrides={"symmetry": "U1"})
    with pytest.raises(ConfigError, match="symmetry"):
        prepare_run("complex-phi4-4x4", overrides={"symmetry": "Z2"})


def test_u1_slice_model_needs_two_sites():
    with pytest.raises(ConfigError, match="lattice must have at least 2 sites"):
        prepare_run("complex-phi4-4x4", overrides={"lattice": "1x1"})
    prepare_run("complex-phi4-4x4", overrides={"lattice": "1x2"})


def test_complex_family_lists_only_applicable_models():
    assert get_family("phi4c").model_kinds() == ["sesamo", "realnvp", "vmonf"]
    with pytest.raises(ConfigError, match="canonical"):
        prepare_run("complex-phi4-4x4", "canonical")
    # the complex model must not look like a discrete group to the metrics
    vm = prepare_run("complex-phi4-4x4", "vmonf").model.double()
    x, log_q = vm.sample_with_log_prob(16)
    torch.testing.assert_close(vm.log_prob(x), log_q.detach())
    run = prepare_run("complex-phi4-4x4")
    assert not hasattr(run.model, "symmetry")
    assert run.target.symmetry() is None


def test_cli_rejects_bad_lattice_with_exit_2(capsys):
    from sesamo_lab.cli import main

    assert main(["train", "complex-phi4-4x4", "--lattice", "0x4", "--out", "/nonexistent"]) == 2
    assert "L_t" in capsys.readouterr().err
    assert main(["train", "scalar-phi4-broken-4x4", "--lam", "-1", "--out", "/nonexistent"]) == 2
    assert "lam" in capsys.readouterr().err
