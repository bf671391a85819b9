"""Input validation with messages that name the parameter and its allowed range.

Every user-facing constructor and the command line route bad input through these helpers, so a
wrong value fails early with one readable line instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class ConfigError(ValueError):
    """A parameter is outside its allowed range; the message names both."""


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ConfigError(f"{name} must be a positive integer (got {value!r})")
    if value < 1:
        raise ConfigError(f"{name} must be a positive integer, >= 1 (got {value!r})")
    return int(value)


def positive_float(name: str, value: object) -> float:
    v = finite_float(name, value)
    if v <= 0:
        raise ConfigError(f"{name} must be > 0 (got {value!r})")
    return v


def finite_float(name: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a finite number (got {value!r})") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be a finite number (got {value!r})")
    return v


def float_in_range(
    name: str, value: object, low: float, high: float, *, low_open: bool = False
) -> float:
    v = finite_float(name, value)
    if v < low or v > high or (low_open and v == low):
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name} must be in {bracket}{low}, {high}] (got {value!r})")
    return v


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
    return str(value)


DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(value: str | torch.dtype) -> torch.dtype:
    if isinstance(value, torch.dtype):
        if value not in DTYPES.values():
            raise ConfigError(f"dtype must be one of float32, float64 (got {value})")
        return value
    return DTYPES[choice("dtype", value, DTYPES)]


def resolve_device(value: str | torch.device) -> torch.device:
    """Parse a device string and check that this machine really has it."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {value!r}; allowed: cpu, cuda, cuda:N, mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {value!r} is not available on this machine (use cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {value!r} does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError(f"device {value!r} is not available on this machine (use cpu)")
    elif device.type != "cpu":
        raise ConfigError(f"unsupported device {value!r}; allowed: cpu, cuda, cuda:N, mps")
    return device
