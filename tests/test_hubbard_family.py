"""Hubbard presets end to end: bad input, SESaMo on the 2-site model, the command line."""

import json

import pytest
import torch

from sesamo_lab.cli import main
from sesamo_lab.families.hubbard import reweighted_sector_stats
from sesamo_lab.hubbard_modulation import SiteFlipBernoulli, SiteFlipTable
from sesamo_lab.metrics import evaluate
from sesamo_lab.presets import get_family, get_preset, resolve_params
from sesamo_lab.runner import prepare_run
from sesamo_lab.training import TrainConfig, train
from sesamo_lab.validation import ConfigError


@pytest.fixture
def one_thread():
    """Tiny 2-D flows train faster on one thread (no thread sync per small op)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        ({"u": 0.0}, "u must be > 0"),
        ({"u": -1.0}, "u must be > 0"),
        ({"beta": 0.0}, "beta must be > 0"),
        ({"nt": 0}, "nt must be a positive integer"),
        ({"sites": 0}, "sites must be a positive integer"),
        ({"lattice": "8x8"}, "unknown lattice"),
        ({"lattice": "square", "sites": 5}, "square number"),
        ({"sector_model": "table", "lattice": "ring", "sites": 20}, "bernoulli"),
        ({"sector_model": "huge"}, "sector_model"),
        ({"hopping": -1.0}, "hopping"),
    ],
)
def test_bad_input_is_a_config_error(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        prepare_run("hubbard-4x8", overrides=overrides)


def test_custom_hopping_matrix_is_validated():
    fam = get_family("hubbard")
    params = resolve_params(get_preset("hubbard-4x8"), {})
    with pytest.raises(ConfigError, match="symmetric"):
        fam.build_target({**params, "hopping_matrix": [[0, 1], [2, 0]]})
    target = fam.build_target({**params, "hopping_matrix": [[0, 1, 1], [1, 0, 1], [1, 1, 0]]})
    assert target.event_shape == (8, 3) and not target.bipartite


def test_sesamo_density_is_consistent_with_its_sampler():
    """log_prob(x) (sector search + inverse) equals the log q of the draw for samples in Omega."""
    run = prepare_run("hubbard-4x8", overrides={"nt": 2}, dtype="float64")
    assert isinstance(run.model.modulation, SiteFlipTable)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in run.model.flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
        run.model.modulation.logits.copy_(torch.randn(8))
        d = run.model.draw(2000)
        inside = ~d.outside
        assert inside.float().mean() > 0.99
        lp = run.model.log_prob(d.x)
    torch.testing.assert_close(lp[inside], d.log_q[inside], rtol=1e-9, atol=1e-9)


def test_eighteen_sites_use_the_factorised_modulation():
    run = prepare_run("hubbard-18x100", overrides={"nt": 2}, eval_samples=100)
    assert isinstance(run.model.modulation, SiteFlipBernoulli)
    assert run.model.modulation.num_elements == 2**18
    assert run.target.bipartite and run.target.event_shape == (2, 18)
    stats = reweighted_sector_stats(run.model, run.target, 200)
    assert len(stats["flip_marginals"]["learned"]) == 17


def test_sesamo_learns_the_two_site_model_and_its_sector_weights(one_thread):
    run = prepare_run("hubbard-2x1", seed=0)
    cfg = TrainConfig(steps=400, batch_size=256, lr=3e-3, seed=0, log_every=100)
    train(run.model, run.target, cfg)
    torch.manual_seed(0)
    m = evaluate(run.model, run.target, 20_000)
    assert m["ess"] > 0.98
    assert m["kl"] < 0.02
    learned = torch.tensor(m["sector_probs"]["learned"])
    exact = torch.tensor(m["sector_probs"]["target"])
    assert (learned - exact).abs().max() < 0.02
    assert learned[1] > 2 * learned[0]  # the antiferromagnetic pair is learned as heavier


def test_plain_flow_collapses_onto_one_quadrant(one_thread):
    run = prepare_run("hubbard-2x1", "realnvp", seed=0)
    train(run.model, run.target, TrainConfig(steps=100, batch_size=256, lr=3e-3, seed=0))
    torch.manual_seed(0)
    m = evaluate(run.model, run.target, 5000)
    assert max(m["sector_probs"]["model"]) > 0.99  # it misses three of the four modes
    assert m["kl"] > 0.5  # ... which the exact log Z exposes (ESS alone would not)


def test_cli_end_to_end_on_a_tiny_preset(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "hubbard-4x8",
            "--nt",
            "2",
            "--steps",
            "4",
            "--batch",
            "16",
            "--eval-samples",
            "200",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["params"]["nt"] == 2 and 0 < metrics["ess"] <= 1
    assert len(metrics["hubbard"]["subset_weights"]["reweighted"]) == 8
    for name in ("site_sums.png", "sector_weights.png", "training.png", "model.pt"):
        assert (out / name).is_file()
    code = main(["train", "hubbard-2x1", "--u", "-3", "--out", str(tmp_path / "bad")])
    assert code == 2
    assert "u must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_two_site_density_figure(tmp_path, one_thread):
    out = tmp_path / "two"
    code = main(
        [
            "train",
            "hubbard-2x1",
            "--steps",
            "3",
            "--batch",
            "16",
            "--eval-samples",
            "500",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    assert (out / "density.png").is_file() and (out / "sector_weights.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sector_probs"]["target"][1] == pytest.approx(0.3521, abs=1e-4)
