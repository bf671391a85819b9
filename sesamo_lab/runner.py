"""Run a preset end to end: build, train, evaluate, write metrics, figures and the model.

Used by the command line, the comparison runner and the notebooks, so all of them produce the
same files from the same settings.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .io import save_model
from .metrics import density_self_consistency, evaluate
from .models import SamplingModel
from .presets import Preset, get_family, get_preset, resolve_params
from .targets.base import Target
from .training import History, TrainConfig, train
from .validation import ConfigError, resolve_device, resolve_dtype


@dataclass
class Run:
    """A configured run: everything is validated and built before anything is written."""

    preset: Preset
    model_kind: str
    params: dict
    train_config: TrainConfig
    device: torch.device
    dtype: torch.dtype
    target: Target
    model: SamplingModel
    eval_samples: int
    history: History = field(default_factory=History)
    metrics: dict = field(default_factory=dict)

    def config(self) -> dict:
        return {
            "preset": self.preset.name,
            "model": self.model_kind,
            "params": self.params,
            "dtype": str(self.dtype).removeprefix("torch."),
            "train": {
                "steps": self.train_config.steps,
                "batch_size": self.train_config.batch_size,
                "lr": self.train_config.lr,
                "seed": self.train_config.seed,
            },
        }


def prepare_run(
    preset_name: str,
    model_kind: str | None = None,
    *,
    overrides: dict | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    eval_samples: int | None = None,
) -> Run:
    """Validate every setting and build the target and model (nothing is written yet)."""
    preset = get_preset(preset_name)
    family = get_family(preset.family)
    kind = model_kind or preset.model
    params = resolve_params(preset, overrides or {})
    cfg = TrainConfig(
        steps=preset.steps if steps is None else steps,
        batch_size=preset.batch_size if batch_size is None else batch_size,
        lr=preset.lr if lr is None else lr,
        seed=seed,
        **preset.train_options,
    )
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    torch.manual_seed(seed)
    target = family.build_target(params).to(device=dev, dtype=dt)
    model = family.build_model(kind, target, params).to(device=dev, dtype=dt)
    n_eval = preset.eval_samples if eval_samples is None else eval_samples
    return Run(preset, kind, params, cfg, dev, dt, target, model, n_eval)


def check_writable(out_dir: Path) -> None:
    """Fail early (before training) if ``out_dir`` cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ConfigError(
            f"output folder {str(out_dir)!r} is not writable ({err.strerror})"
        ) from None


def execute(run: Run, out_dir: Path | None, progress: bool = False, callback=None) -> dict:
    """Train, evaluate and (if ``out_dir``) write metrics.json, figures, model and history."""
    family = get_family(run.preset.family)
    run.history = train(
        run.model, run.target, run.train_config, progress=progress, callback=callback
    )
    metrics = evaluate(run.model, run.target, run.eval_samples)
    mean, err = density_self_consistency(run.model, run.target, n=min(run.eval_samples, 50_000))
    metrics.update(
        preset=run.preset.name,
        model=run.model_kind,
        seed=run.train_config.seed,
        steps=len(run.history.step),
        batch_size=run.train_config.batch_size,
        train_seconds=run.history.seconds,
        skipped_steps=run.history.skipped_steps,
        interrupted=run.history.interrupted,
        density_integral={"mean": mean, "stderr": err},
        device=str(run.device),
        dtype=str(run.dtype).removeprefix("torch."),
        torch_threads=torch.get_num_threads(),
        params=run.params,
    )
    metrics.update(family.extra_metrics(run.model, run.target, run.eval_samples))
    run.metrics = metrics
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        figures = family.write_figures(
            run.model, run.target, out_dir, run.eval_samples, run.history
        )
        metrics["figures"] = figures
        save_model(run.model, out_dir, run.config())
        _write_json(out_dir / "history.json", run.history.to_dict())
        _write_json(out_dir / "metrics.json", metrics)
    return metrics


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")
