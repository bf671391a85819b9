"""Flow-reweighted observables against HMC on a 4×4 lattice, and the phi^4 run pipeline."""

import json

import numpy as np
import pytest
import torch

from sesamo_lab.families.phi4 import draw_weighted
from sesamo_lab.hmc import run_hmc
from sesamo_lab.observables import (
    chain_estimates,
    configuration_observables,
    integrated_autocorrelation,
    reweighted_estimates,
)
from sesamo_lab.runner import execute, prepare_run
from sesamo_lab.training import train


def hmc_reference(target, trajectories=3000, chains=8):
    res = run_hmc(target, trajectories, chains=chains, step_size=0.12, n_leapfrog=8, seed=11)
    x = res.samples
    obs = configuration_observables(x.reshape(-1, *target.event_shape), target)
    obs = {k: v.reshape(x.shape[0], x.shape[1], *v.shape[1:]) for k, v in obs.items()}
    tau, _ = integrated_autocorrelation(obs["abs_m"])
    assert res.acceptance > 0.7
    assert tau < trajectories / 100  # jackknife blocks (T/20) are much longer than tau
    return chain_estimates(obs, target.volume)


@pytest.mark.parametrize(
    "preset,overrides,steps",
    [
        ("scalar-phi4-broken-4x4", {"flow": "mlp", "hidden": 64, "couplings": 6}, 300),
        ("complex-phi4-broken-4x4", {"hidden": 8, "couplings": 4}, 200),
    ],
)
def test_flow_observables_agree_with_hmc(preset, overrides, steps):
    run = prepare_run(preset, overrides=overrides, steps=steps, batch_size=256, lr=3e-3, seed=0)
    run.target.double()
    train(run.model, run.target, run.train_config)
    torch.manual_seed(1)
    x, log_w = draw_weighted(run.model, run.target, 20_000)
    flow = reweighted_estimates(configuration_observables(x, run.target), log_w, run.target.volume)
    ref = hmc_reference(run.target)
    for key in ("abs_magnetisation", "susceptibility"):
        f, h = flow[key], ref[key]
        sigma = np.hypot(f["error"], h["error"])
        print(f"{preset} {key}: flow {f} HMC {h} z = {(f['mean'] - h['mean']) / sigma:.2f}")
        assert abs(f["mean"] - h["mean"]) < 3 * sigma, (key, f, h)
        assert f["error"] < 0.2 * abs(f["mean"])  # the comparison is informative


def test_cli_pipeline_writes_observables_and_figures(tmp_path):
    run = prepare_run(
        "complex-phi4-broken-4x4",
        overrides={"hidden": 4, "couplings": 2},
        steps=5,
        batch_size=32,
        eval_samples=500,
    )
    metrics = execute(run, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["observables"]["abs_magnetisation"]["error"] > 0
    assert len(saved["angle"]["reweighted_density"]) == saved["angle"]["bins"]
    assert {"fields.png", "magnetisation.png", "angle.png"} <= set(metrics["figures"])
    for name in metrics["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
