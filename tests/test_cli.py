"""The command line end to end, bad input, and the save/load round trip."""

import json
import os
import subprocess
import sys

import pytest
import torch

from sesamo_lab.io import load_model
from sesamo_lab.runner import execute, prepare_run

CLI = [sys.executable, "-m", "sesamo_lab"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_cli(*args, cwd=None):
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600
    )


def test_presets_lists_the_mixture_presets():
    r = run_cli("presets")
    assert r.returncode == 0
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert "gmm-z8" in names and "gmm-z8-broken" in names


def test_train_writes_metrics_figure_and_model(tmp_path):
    out = tmp_path / "run"
    r = run_cli(
        "train",
        "gmm-z8-broken",
        "--steps",
        "60",
        "--batch",
        "128",
        "--eval-samples",
        "2000",
        "--seed",
        "3",
        "--out",
        str(out),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    for key in (
        "preset",
        "model",
        "ess",
        "kl",
        "nll",
        "sector_probs",
        "outside_domain_fraction",
        "train_seconds",
        "steps",
        "seed",
    ):
        assert key in m
    assert m["preset"] == "gmm-z8-broken" and m["model"] == "sesamo"
    assert m["steps"] == 60 and m["seed"] == 3
    assert 0 < m["ess"] <= 1 and m["kl"] is not None and m["nll"] is not None
    sp = m["sector_probs"]
    assert len(sp["model"]) == len(sp["target"]) == 8
    assert abs(sum(sp["target"]) - 1) < 1e-9
    for name in ("density.png", "model.pt", "config.json", "history.json", "training.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "density.png").read_bytes()[:4] == b"\x89PNG"


def test_target_options_reach_the_target(tmp_path):
    out = tmp_path / "r"
    r = run_cli(
        "train",
        "gmm-z8",
        "--modes",
        "4",
        "--radius",
        "6",
        "--group",
        "2",
        "--steps",
        "5",
        "--batch",
        "32",
        "--eval-samples",
        "500",
        "--out",
        str(out),
        "--model",
        "realnvp",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["params"]["modes"] == 4 and m["params"]["radius"] == 6.0
    assert m["model"] == "realnvp"
    # the plain flow has no learned weights and no domain
    assert m["sector_probs"]["learned"] is None and m["outside_domain_fraction"] is None


@pytest.mark.parametrize(
    "args,needle",
    [
        (["gmm-z8", "--modes", "0"], "modes"),
        (["gmm-z8", "--radius", "-2"], "radius"),
        (["gmm-z8", "--sigma", "0"], "sigma"),
        (["gmm-z8", "--breaking", "nan"], "breaking"),
        (["gmm-z8", "--breaking", "inf"], "breaking"),
        (["gmm-z8", "--steps", "0"], "steps"),
        (["gmm-z8", "--batch", "-4"], "batch"),
        (["gmm-z8", "--group", "3"], "group"),
        (["no-such-preset"], "preset"),
        (["gmm-z8", "--model", "magic"], "model"),
        (["gmm-z8", "--device", "tpu9"], "device"),
        (["gmm-z8", "--device", "cuda:7"], "device"),
        (["gmm-z8", "--dtype", "float16"], "dtype"),
        (["gmm-z8", "--modulation", "sometimes"], "modulation"),
        (["gmm-z8", "--penalty-strength", "-1"], "penalty strength"),
        (["gmm-z8", "--steps", "many"], "steps"),
        (["gmm-z8", "--threads", "0"], "threads"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, needle):
    out = tmp_path / "never"
    r = run_cli("train", *args, "--out", str(out))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sesamo-lab: error:"), r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run_cli("train", "gmm-z8", "--steps", "1", "--out", str(blocker / "sub"))
    assert r.returncode == 2
    assert "output folder" in r.stderr and "Traceback" not in r.stderr


def test_save_load_round_trip(tmp_path):
    run = prepare_run("gmm-z8-broken", steps=30, batch_size=64, eval_samples=500)
    execute(run, tmp_path)
    model, target, config = load_model(tmp_path)
    assert config["preset"] == "gmm-z8-broken"
    x = run.target.sample(256).float()
    torch.testing.assert_close(model.log_prob(x), run.model.log_prob(x))
    torch.testing.assert_close(model.learned_sector_probs(), run.model.learned_sector_probs())
    # weights load with weights_only=True: the file holds tensors only
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_float64_run():
    run = prepare_run("gmm-z8", steps=3, batch_size=16, dtype="float64", eval_samples=200)
    m = execute(run, None)
    assert m["dtype"] == "float64"
    assert next(run.model.parameters()).dtype == torch.float64
