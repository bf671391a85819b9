"""Building models by name ("sesamo", "realnvp", ...) from a target-independent recipe.

A target family describes *what* to build in a ``ModelSpec`` (backbone flow factory, symmetry,
exact or broken, penalty); the builders registered here decide *how*. Baselines register more
builders with ``register_model_kind``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .flows import Flow
from .models import FlowSampler, SamplingModel, SESaMo
from .modulation import CategoricalModulation
from .penalty import BijectivityPenalty
from .symmetry import DiscreteSymmetry
from .validation import ConfigError


@dataclass
class ModelSpec:
    """Everything a builder needs: a fresh backbone per call, the group, broken or exact."""

    event_shape: tuple[int, ...]
    flow_factory: Callable[[], Flow]
    symmetry: DiscreteSymmetry | None
    broken: bool
    penalty: BijectivityPenalty


ModelBuilder = Callable[[ModelSpec], SamplingModel]
MODEL_KINDS: dict[str, ModelBuilder] = {}


def register_model_kind(name: str, builder: ModelBuilder) -> None:
    MODEL_KINDS[name] = builder


def build_model(kind: str, spec: ModelSpec) -> SamplingModel:
    if kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model {kind!r}; allowed: {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[kind](spec)


def _build_sesamo(spec: ModelSpec) -> SamplingModel:
    if spec.symmetry is None:
        raise ConfigError("model 'sesamo' needs a symmetry group; this target has none")
    modulation = CategoricalModulation(spec.symmetry.num_elements, learnable=spec.broken)
    return SESaMo(spec.flow_factory(), spec.symmetry, modulation, spec.penalty)


def _build_realnvp(spec: ModelSpec) -> SamplingModel:
    return FlowSampler(spec.flow_factory(), spec.event_shape)


register_model_kind("sesamo", _build_sesamo)
register_model_kind("realnvp", _build_realnvp)

# The baselines register last: they import models and validation only, never this module.
from .baselines import build_canonical, build_vmonf  # noqa: E402

register_model_kind("canonical", build_canonical)
register_model_kind("vmonf", build_vmonf)
