"""Named, reproducible settings ("presets") and the target families they belong to.

A *family* (Gaussian mixture, phi^4, Hubbard) knows how to build its target and models from a
flat dict of parameters, which command-line options it takes, and which figures and extra
metrics it writes. A *preset* is a family plus default parameters and a training budget.
Families live in ``sesamo_lab.families`` and register themselves on import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .model_kinds import MODEL_KINDS, ModelSpec, build_model
from .models import SamplingModel
from .targets.base import Target
from .validation import ConfigError, positive_int


@dataclass(frozen=True)
class Option:
    """A target option on the command line: ``--flag`` stored under ``dest`` in the params."""

    flag: str
    dest: str
    type: Callable
    help: str
    metavar: str | None = None


# Shared by every family with an external field, so the flag has one meaning and one type.
BREAKING_OPTION = Option(
    "--breaking", "breaking", float, "symmetry-breaking field h (finite; 0 = exact symmetry)", "H"
)


def backbone_kwargs(params: dict) -> dict:
    """Validated width settings of the coupling flow shared by all families."""
    return {
        "couplings": positive_int("couplings", params["couplings"]),
        "hidden": positive_int("hidden", params["hidden"]),
        "depth": positive_int("depth", params.get("depth", 2)),
    }


class Family:
    """Base class of a target family; subclasses fill in the hooks."""

    name: str = ""
    options: tuple[Option, ...] = ()

    def build_target(self, params: dict) -> Target:
        raise NotImplementedError

    def model_spec(self, target: Target, params: dict) -> ModelSpec:
        raise NotImplementedError

    def model_kinds(self) -> list[str]:
        return list(MODEL_KINDS)

    def build_model(self, kind: str, target: Target, params: dict) -> SamplingModel:
        if kind not in self.model_kinds():
            raise ConfigError(
                f"model {kind!r} does not apply to {self.name} targets; "
                f"allowed: {', '.join(self.model_kinds())}"
            )
        return build_model(kind, self.model_spec(target, params))

    def extra_metrics(self, model: SamplingModel, target: Target, n: int) -> dict:
        return {}

    def write_figures(
        self, model: SamplingModel, target: Target, out_dir: Path, n: int, history=None
    ) -> list[str]:
        return []


@dataclass
class Preset:
    name: str
    family: str
    description: str
    params: dict
    steps: int
    batch_size: int
    lr: float
    eval_samples: int = 50_000
    train_options: dict = field(default_factory=dict)  # extra TrainConfig fields
    model: str = "sesamo"


FAMILIES: dict[str, Family] = {}
PRESETS: dict[str, Preset] = {}

# Modules that register families and presets; each issue's family adds itself here.
FAMILY_MODULES = [
    "sesamo_lab.families.gmm",
    "sesamo_lab.families.hubbard",
    "sesamo_lab.families.phi4",
]
_loaded = False


def register_family(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def register_preset(preset: Preset) -> Preset:
    if preset.family not in FAMILIES:
        raise ValueError(f"preset {preset.name}: unknown family {preset.family}")
    PRESETS[preset.name] = preset
    return preset


def _load() -> None:
    global _loaded
    if not _loaded:
        for mod in FAMILY_MODULES:
            importlib.import_module(mod)
        _loaded = True


def list_presets() -> list[Preset]:
    _load()
    return list(PRESETS.values())


def get_preset(name: str) -> Preset:
    _load()
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return PRESETS[name]


def get_family(name: str) -> Family:
    _load()
    return FAMILIES[name]


def all_options() -> list[Option]:
    """Every family's options, each flag once (families share e.g. --breaking)."""
    _load()
    seen: dict[str, Option] = {}
    for fam in FAMILIES.values():
        for opt in fam.options:
            seen.setdefault(opt.flag, opt)
    return list(seen.values())


def resolve_params(preset: Preset, overrides: dict) -> dict:
    """Preset defaults updated with the overrides that are not None.

    An override that the preset's family does not know is an error, so e.g. ``--kappa`` on a
    mixture preset is refused instead of silently ignored.
    """
    family = get_family(preset.family)
    known = {o.dest: o for o in family.options}
    params = dict(preset.params)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in known and key not in params:
            flag = next((o.flag for o in all_options() if o.dest == key), key)
            raise ConfigError(
                f"option {flag} does not apply to preset {preset.name} ({family.name}); "
                f"its options: {', '.join(o.flag for o in family.options) or 'none'}"
            )
        params[key] = value
    return params
