"""The bijectivity penalty that keeps the flow's output inside the fundamental domain."""

from __future__ import annotations

import torch

from .validation import positive_float


class BijectivityPenalty:
    """Lambda(y) = sum_c A * sigmoid(B * lambda_c(y)) * Theta(lambda_c(y)).

    Zero inside Omega (all lambda_c <= 0); outside it jumps to A/2 at the boundary and rises
    towards A. A sets the size against the loss scale; B sets how far outside the sigmoid still
    has slope (about 4/B): too large and samples far outside get no gradient back.
    The SESaMo reference code defaults to A = 1000, B = 100 (method.md section 3).
    """

    def __init__(self, strength: float = 1000.0, sharpness: float = 100.0):
        self.strength = positive_float("penalty strength A", strength)
        self.sharpness = positive_float("penalty sharpness B", sharpness)

    def __call__(self, constraints: torch.Tensor) -> torch.Tensor:
        if constraints.shape[-1] == 0:
            return constraints.new_zeros(constraints.shape[0])
        active = (constraints > 0).to(constraints.dtype)
        value = self.strength * torch.sigmoid(self.sharpness * constraints) * active
        return value.sum(-1)

    def config(self) -> dict:
        return {"strength": self.strength, "sharpness": self.sharpness}
