"""Saving and loading trained models: a ``state_dict`` plus a JSON config.

``model.pt`` holds tensors only and is read back with ``torch.load(..., weights_only=True)``;
``config.json`` holds the preset, model kind and parameters needed to rebuild the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .models import SamplingModel
from .targets.base import Target
from .validation import ConfigError, resolve_dtype

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"


def save_model(model: SamplingModel, out_dir: Path | str, config: dict) -> None:
    """Write ``model.pt`` (state_dict) and ``config.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, out / WEIGHTS_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def load_model(run_dir: Path | str, device: str = "cpu") -> tuple[SamplingModel, Target, dict]:
    """Rebuild the model and target saved by ``save_model`` (via the preset registry)."""
    from .presets import get_family, get_preset  # noqa: PLC0415

    run = Path(run_dir)
    if not (run / CONFIG_FILE).is_file() or not (run / WEIGHTS_FILE).is_file():
        raise ConfigError(f"{run} does not hold a saved model ({CONFIG_FILE} + {WEIGHTS_FILE})")
    config = json.loads((run / CONFIG_FILE).read_text())
    preset = get_preset(config["preset"])
    family = get_family(preset.family)
    params = config["params"]
    dtype = resolve_dtype(config.get("dtype", "float32"))
    target = family.build_target(params).to(device=device, dtype=dtype)
    model = family.build_model(config["model"], target, params)
    state = torch.load(run / WEIGHTS_FILE, map_location=device, weights_only=True)
    model.load_state_dict(state)
    model.to(device=device, dtype=dtype).eval()
    return model, target, config
