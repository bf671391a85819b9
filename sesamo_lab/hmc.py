"""Hybrid Monte Carlo (Duane, Kennedy, Pendleton, Roweth 1987) for real and complex lattice fields.

Many independent chains run side by side as one batch. One trajectory:

    p ~ N(0, 1);  H = p²/2 + S(φ);
    leapfrog with step ε for n steps (trajectory length τ = n ε):
        p ← p − (ε/2) ∂S/∂φ;  repeat n times { φ ← φ + ε p;  p ← p − ε ∂S/∂φ (ε/2 at the end) };
    accept the end point with probability min(1, exp(−ΔH)).

The leapfrog map is volume preserving and reversible (flip p, run again, and you return to the
start), so the Metropolis step makes the chain exact; the energy error ΔH shrinks like ε² at fixed
τ. A complex field is handled as its two real components (shape (…, 2, L_t, L_x)).

Optional global moves (``global_moves=True``), one after every trajectory, accepted by Metropolis
on the action change: the sign flip φ → −φ for real fields and a random global phase φ → e^{iθ}φ
for complex fields. They leave the target invariant (their proposal is symmetric) and let a chain
cross between the vacua of the ordered phase, which the local dynamics of HMC cannot do on an 8×8
lattice in any reasonable time. With h = 0 they are always accepted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .validation import positive_float, positive_int


@dataclass
class HMCResult:
    """Chain states (T, chains, *shape) after each trajectory, plus diagnostics."""

    samples: torch.Tensor
    acceptance: float
    delta_h: np.ndarray  # (T, chains): energy error of every proposal
    global_acceptance: float | None
    seconds: float
    step_size: float
    n_leapfrog: int
    extra: dict = field(default_factory=dict)

    @property
    def trajectory_length(self) -> float:
        return self.step_size * self.n_leapfrog


def force(action, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(S(φ), ∂S/∂φ) per chain, by autograd."""
    with torch.enable_grad():
        x = phi.detach().requires_grad_(True)
        s = action(x)
        (g,) = torch.autograd.grad(s.sum(), x)
    return s.detach(), g


def leapfrog(action, phi: torch.Tensor, p: torch.Tensor, step_size: float, n_steps: int):
    """Integrate Hamilton's equations; returns (φ, p) at the end of the trajectory."""
    _, g = force(action, phi)
    p = p - 0.5 * step_size * g
    for i in range(n_steps):
        phi = phi + step_size * p
        _, g = force(action, phi)
        p = p - (step_size if i < n_steps - 1 else 0.5 * step_size) * g
    return phi, p


def _kinetic(p: torch.Tensor) -> torch.Tensor:
    return 0.5 * p.reshape(p.shape[0], -1).pow(2).sum(-1)


def global_move(target, phi: torch.Tensor, s_now: torch.Tensor, generator=None):
    """Propose the global symmetry move of the target's field and accept by Metropolis."""
    n = phi.shape[0]
    if getattr(target, "complex_field", False):
        theta = 2 * math.pi * torch.rand(n, dtype=phi.dtype, generator=generator)
        c, s = theta.cos().reshape(-1, 1, 1), theta.sin().reshape(-1, 1, 1)
        a, b = phi[:, 0], phi[:, 1]
        proposal = torch.stack([c * a - s * b, s * a + c * b], dim=1)
    else:
        proposal = -phi
    s_new = target.action(proposal)
    accept = torch.rand(n, dtype=phi.dtype, generator=generator).log() < (s_now - s_new)
    mask = accept.reshape(-1, *([1] * (phi.dim() - 1)))
    return torch.where(mask, proposal, phi), torch.where(accept, s_new, s_now), accept


@torch.no_grad()
def run_hmc(
    target,
    n_trajectories: int,
    *,
    chains: int = 8,
    step_size: float = 0.1,
    n_leapfrog: int = 10,
    thermalise: int = 100,
    global_moves: bool = True,
    x0: torch.Tensor | None = None,
    seed: int | None = 0,
    dtype: torch.dtype = torch.float64,
) -> HMCResult:
    """Run ``chains`` HMC chains for ``thermalise`` + ``n_trajectories`` trajectories each.

    Start: x0 if given, else every site at the constant-field minimum (a cold start), which is
    in the ordered phase a good start and is thermalised quickly.
    """
    n_trajectories = positive_int("HMC trajectories", n_trajectories)
    chains = positive_int("HMC chains", chains)
    step_size = positive_float("HMC step size", step_size)
    n_leapfrog = positive_int("HMC leapfrog steps", n_leapfrog)
    if seed is not None:
        torch.manual_seed(seed)
    if x0 is None:
        v = target.minimum_field() if hasattr(target, "minimum_field") else 0.0
        phi = torch.full((chains, *target.event_shape), v, dtype=dtype)
        if getattr(target, "complex_field", False):
            phi[:, 1] = 0
    else:
        phi = x0.to(dtype).clone()
        chains = phi.shape[0]
    s_now = target.action(phi)
    samples, dh_all = [], []
    accepted = 0
    g_acc, g_tot = 0, 0
    t0 = time.perf_counter()
    for it in range(thermalise + n_trajectories):
        p = torch.randn_like(phi)
        h0 = _kinetic(p) + s_now
        phi_new, p_new = leapfrog(target.action, phi, p, step_size, n_leapfrog)
        s_new = target.action(phi_new)
        dh = _kinetic(p_new) + s_new - h0
        accept = torch.rand(chains, dtype=dtype).log() < -dh
        accept = accept & torch.isfinite(dh)
        mask = accept.reshape(-1, *([1] * (phi.dim() - 1)))
        phi = torch.where(mask, phi_new, phi)
        s_now = torch.where(accept, s_new, s_now)
        if global_moves:
            phi, s_now, g = global_move(target, phi, s_now)
        if it >= thermalise:
            samples.append(phi.clone())
            dh_all.append(dh.cpu().numpy())
            accepted += int(accept.sum())
            if global_moves:
                g_acc += int(g.sum())
                g_tot += chains
    seconds = time.perf_counter() - t0
    return HMCResult(
        samples=torch.stack(samples),
        acceptance=accepted / (n_trajectories * chains),
        delta_h=np.stack(dh_all),
        global_acceptance=g_acc / g_tot if global_moves else None,
        seconds=seconds,
        step_size=step_size,
        n_leapfrog=n_leapfrog,
    )
