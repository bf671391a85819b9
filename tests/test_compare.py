"""The comparison runner: the equal-mass limit, model parsing and the CLI end to end."""

import csv
import math

import numpy as np
import pytest
import torch

from sesamo_lab.cli import main
from sesamo_lab.compare import _histogram_quantity, equal_mass_limit, mean_stderr, parse_models
from sesamo_lab.metrics import ess
from sesamo_lab.presets import get_family
from sesamo_lab.validation import ConfigError


def test_equal_mass_limit_formula_and_monte_carlo():
    p = np.array([0.5, 0.25, 0.15, 0.1])
    lim = equal_mass_limit(p)
    assert lim["ess"] == pytest.approx(1 / (4 * np.sum(p**2)))
    assert lim["kl"] == pytest.approx(np.sum(0.25 * np.log(0.25 / p)))
    # a perfect in-sector fit with masses 1/K: w = p_u / (1/K) on sector u ~ uniform
    g = torch.Generator().manual_seed(0)
    u = torch.randint(0, 4, (400_000,), generator=g)
    log_w = torch.log(torch.as_tensor(p * 4))[u]
    assert ess(log_w) == pytest.approx(lim["ess"], rel=3e-3)
    # exact symmetry: no loss at all
    flat = equal_mass_limit(np.full(8, 0.125))
    assert flat["ess"] == pytest.approx(1.0) and flat["kl"] == pytest.approx(0.0, abs=1e-12)


def test_histogram_quantity_is_m_per_site_or_the_angle_of_m():
    from sesamo_lab.targets.phi4 import ComplexPhi4, RealPhi4
    from sesamo_lab.u1 import rotate

    g = torch.Generator().manual_seed(1)
    real = RealPhi4("3x4", 0.3, 0.02)
    phi = torch.randn(5, 3, 4, generator=g)
    torch.testing.assert_close(_histogram_quantity(real, phi), phi.mean((-2, -1)))
    cplx = ComplexPhi4("3x4", 0.3, 0.02)
    x = torch.randn(5, 2, 3, 4, generator=g, dtype=torch.float64)
    angle = _histogram_quantity(cplx, x)
    assert torch.all((angle >= 0) & (angle < 360))
    turned = _histogram_quantity(cplx, rotate(x, torch.full((5,), math.radians(40.0))))
    torch.testing.assert_close(
        torch.remainder(turned - angle, 360.0), torch.full((5,), 40.0, dtype=torch.float64)
    )


def test_parse_models_and_mean_stderr():
    assert parse_models("sesamo, realnvp,sesamo") == ["sesamo", "realnvp"]
    with pytest.raises(ConfigError, match="unknown model 'flowx'"):
        parse_models("sesamo,flowx")
    with pytest.raises(ConfigError):
        parse_models(" , ")
    m, e = mean_stderr([1.0, 2.0, 3.0])
    assert m == 2.0 and e == pytest.approx(1 / math.sqrt(3))
    assert mean_stderr([None, None]) == (None, None)
    assert mean_stderr([1.0, math.inf]) == (math.inf, None)


def test_compare_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(
        [
            "compare",
            "gmm-z8-broken",
            "--models",
            "sesamo,realnvp,canonical,vmonf",
            "--seeds",
            "2",
            "--steps",
            "15",
            "--eval-samples",
            "400",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    for name in ("compare.md", "compare.csv", "runs.csv", "compare.png"):
        assert (out / name).stat().st_size > 0
    md = (out / "compare.md").read_text()
    for kind in ("sesamo", "realnvp", "canonical", "vmonf"):
        assert f"| {kind} |" in md
    assert "Equal-mass limit" in md and "rot 225°" in md
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["model"] for r in rows] == [
        "sesamo",
        "realnvp",
        "canonical",
        "vmonf",
        "equal-mass-limit",
    ]
    lim = float(rows[-1]["ess_mean"])
    assert 0.5 < lim < 0.9
    for r in rows[:-1]:
        assert 0 < float(r["ess_mean"]) <= 1 and float(r["ess_stderr"]) >= 0
        targets = [float(r[f"sector{u}_target"]) for u in range(8)]
        assert sum(targets) == pytest.approx(1.0)
        assert sum(float(r[f"sector{u}_mean"]) for u in range(8)) == pytest.approx(1.0)
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert len(runs) == 8 and {r["seed"] for r in runs} == {"0", "1"}
    assert "Equal-mass limit" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gmm-z8", "--models", "sesamo,nf"], "unknown model 'nf'"),
        (["gmm-z8", "--seeds", "0"], "seeds must be a positive integer"),
        (["gmm-z99"], "unknown preset"),
        (["gmm-z8", "--steps", "0"], "steps"),
    ],
)
def test_compare_cli_bad_input(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    rc = main(["compare", *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (out / "compare.md").exists()


def test_compare_refuses_a_model_that_does_not_apply(tmp_path, capsys, monkeypatch):
    family = get_family("gmm")
    monkeypatch.setattr(family, "model_kinds", lambda: ["sesamo", "realnvp"])
    out = tmp_path / "never"
    rc = main(["compare", "gmm-z8", "--models", "sesamo,canonical", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "does not apply" in err and len(err.splitlines()) == 1
    assert not (out / "compare.md").exists()


def test_compare_refuses_canonicalization_for_the_complex_field(tmp_path, capsys):
    from sesamo_lab.presets import PRESETS, list_presets

    list_presets()
    if "complex-phi4" not in PRESETS:
        pytest.skip("the complex phi^4 family is not registered")
    out = tmp_path / "never"
    rc = main(["compare", "complex-phi4", "--models", "sesamo,canonical", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "canonical" in err and len(err.splitlines()) == 1
    assert not (out / "compare.md").exists()


class _ExactMixture(torch.nn.Module):
    """A 'model' whose log_prob is the exact target density (for the quadrature check)."""

    def __init__(self, target):
        super().__init__()
        self.target = target
        self.event_shape = (2,)
        self.w = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    @property
    def dtype(self):
        return torch.float64

    @property
    def device(self):
        return torch.device("cpu")

    def log_prob(self, x):
        return -self.target.action(x) - self.target.log_z


def test_grid_reference_matches_exact_sampling(f64):
    """Quadrature NLL / forward ESS agree with the exact-sample estimators of metrics.evaluate."""
    from sesamo_lab.compare import GridReference
    from sesamo_lab.metrics import forward_ess
    from sesamo_lab.models import FlowSampler
    from sesamo_lab.targets.gmm import GaussianMixture

    target = GaussianMixture(4, 5.0, 1.0, 0.1).double()
    grid = GridReference.build(target, bins=300)
    exact = grid.forward_metrics(_ExactMixture(target))
    assert exact["forward_ess"] == pytest.approx(1.0, abs=1e-9)
    assert exact["target_mass_unreached"] == 0.0
    # a flow that covers the target badly: wide, shifted Gaussian
    from sesamo_lab.flows import ElementwiseAffine, Flow

    layer = ElementwiseAffine((2,))
    with torch.no_grad():
        layer.log_scale.fill_(math.log(4.0))
        layer.shift.copy_(torch.tensor([1.0, -0.5]))
    model = FlowSampler(Flow([layer]), (2,)).double()
    quad = grid.forward_metrics(model)
    torch.manual_seed(0)
    n = 400_000
    with torch.no_grad():
        xs = target.sample(n)
        lq = model.log_prob(xs)
        w = (-target.action(xs) - target.log_z - lq).exp()  # p / q, E_p[w] = 1 / forward ESS
    assert quad["nll"] == pytest.approx(float(-lq.mean()), abs=4 * float(lq.std()) / n**0.5)
    e_w, e_w_err = float(w.mean()), float(w.std()) / n**0.5
    assert 1 / quad["forward_ess"] == pytest.approx(e_w, abs=4 * e_w_err)
    assert 0.05 < quad["forward_ess"] < 0.9
    # the sample estimator of metrics (ratio form) agrees to its own accuracy
    assert forward_ess(-target.action(xs) - lq) == pytest.approx(quad["forward_ess"], rel=0.1)
    # the exact entropy is the NLL of the exact density
    assert exact["nll"] == pytest.approx(float((target.action(xs) + target.log_z).mean()), abs=0.01)
