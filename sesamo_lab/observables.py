"""Lattice observables with error bars: from weighted flow samples and from Markov chains.

Per configuration (V sites, m = M/V, M = Σ_x φ_x, complex for complex fields):

* ``abs_m``      |M|/V
* ``m2``         |M|²/V²
* ``m``          M/V (real fields) or Re, Im of M/V (complex fields)
* ``action_density``  S/V
* ``angle``      arg M in [0, 2π) (complex fields)
* ``corr``       the zero-momentum correlator C(t) = (1/V) Σ_x Re(φ̄_x φ_{x+t ê_t}), t = 0 … L_t − 1

Derived quantities (functions of averages):

* ⟨|M|⟩/V = ⟨abs_m⟩
* susceptibility χ = V (⟨m2⟩ − ⟨abs_m⟩²)   (the |M| form, finite in the ordered phase)
* connected two-point function G_c(t) = ⟨C(t)⟩ − ⟨abs_m⟩²  (the disconnected part uses |m|, so
  it does not vanish in a finite ordered system where ⟨M⟩ = 0 by symmetry)
* ⟨S⟩/V

Errors: every derived quantity goes through a delete-one-block jackknife. For flow samples the
estimates are self-normalised importance sums with w = exp(−S − log q); the jackknife blocks are
contiguous groups of independent samples. For Markov chains the blocks are contiguous stretches
of the chain (pooled over parallel chains) that should be much longer than the integrated
autocorrelation time, which is reported too (``integrated_autocorrelation``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


@torch.no_grad()
def configuration_observables(x: torch.Tensor, target) -> dict[str, np.ndarray]:
    """Per-sample observables of fields x (real (n, L_t, L_x) or complex (n, 2, L_t, L_x))."""
    x = x.detach().double()
    n = x.shape[0]
    volume = target.volume
    complex_field = target.complex_field
    flat = x.reshape(n, 2, -1) if complex_field else x.reshape(n, 1, -1)
    m_parts = flat.sum(-1) / volume  # (n, 1 or 2)
    m2 = (m_parts**2).sum(-1)
    # C(t): product with the field shifted by t along the time axis (axis -2), averaged over sites
    lt = x.shape[-2]
    corr = torch.stack(
        [(x * torch.roll(x, -t, dims=-2)).reshape(n, -1).sum(-1) / volume for t in range(lt)],
        dim=-1,
    )
    out = {
        "abs_m": m2.sqrt().cpu().numpy(),
        "m2": m2.cpu().numpy(),
        "action_density": (target.action(x) / volume).cpu().numpy(),
        "corr": corr.cpu().numpy(),
    }
    if complex_field:
        out["m_re"] = m_parts[:, 0].cpu().numpy()
        out["m_im"] = m_parts[:, 1].cpu().numpy()
        out["angle"] = np.mod(np.arctan2(out["m_im"], out["m_re"]), 2 * math.pi)
    else:
        out["m"] = m_parts[:, 0].cpu().numpy()
    return out


# --- derived quantities: functions of (weighted) means ----------------------------------------
def _derived(means: dict[str, np.ndarray], volume: int) -> dict[str, np.ndarray]:
    abs_m = means["abs_m"]
    out = {
        "abs_magnetisation": abs_m,
        "susceptibility": volume * (means["m2"] - abs_m**2),
        "action_density": means["action_density"],
        "two_point_connected": means["corr"] - abs_m**2,
    }
    if "m" in means:
        out["magnetisation"] = means["m"]
    if "m_re" in means:
        out["magnetisation_re"] = means["m_re"]
        out["magnetisation_im"] = means["m_im"]
    return out


def _weighted_means(obs: dict[str, np.ndarray], w: np.ndarray) -> dict[str, np.ndarray]:
    tot = w.sum()
    return {k: np.tensordot(w, v, axes=(0, 0)) / tot for k, v in obs.items() if k != "angle"}


def jackknife(
    estimate: Callable[[np.ndarray], dict[str, np.ndarray]], n: int, blocks: int
) -> dict[str, dict]:
    """Delete-one-block jackknife of ``estimate(index_mask)`` over ``blocks`` contiguous blocks."""
    blocks = max(2, min(blocks, n))
    edges = np.linspace(0, n, blocks + 1).astype(int)
    full = estimate(np.ones(n, dtype=bool))
    reps = []
    for j in range(blocks):
        keep = np.ones(n, dtype=bool)
        keep[edges[j] : edges[j + 1]] = False
        reps.append(estimate(keep))
    result = {}
    for key, value in full.items():
        r = np.stack([np.asarray(rep[key], dtype=float) for rep in reps])
        err = np.sqrt((blocks - 1) / blocks * ((r - r.mean(0)) ** 2).sum(0))
        result[key] = {"mean": _tolist(value), "error": _tolist(err)}
    return result


def _tolist(v):
    v = np.asarray(v, dtype=float)
    return float(v) if v.ndim == 0 else v.tolist()


def reweighted_estimates(
    obs: dict[str, np.ndarray], log_w: np.ndarray, volume: int, blocks: int = 50
) -> dict[str, dict]:
    """Self-normalised importance-sampling estimates ⟨O⟩ = Σ w O / Σ w with jackknife errors."""
    lw = np.asarray(log_w, dtype=float)
    lw = np.where(np.isfinite(lw), lw, -np.inf)
    w = np.exp(lw - lw.max())

    def estimate(keep):
        sub = {k: v[keep] for k, v in obs.items()}
        return _derived(_weighted_means(sub, w[keep]), volume)

    return jackknife(estimate, len(w), blocks)


def chain_estimates(obs: dict[str, np.ndarray], volume: int, blocks: int = 20) -> dict[str, dict]:
    """Estimates from Markov chains; ``obs`` arrays have shape (T, chains, ...).

    Blocks are contiguous in chain time (all chains pooled), so correlations shorter than T/blocks
    are accounted for; check ``integrated_autocorrelation`` against that length.
    """
    t_len = next(iter(obs.values())).shape[0]

    def estimate(keep):
        sub = {k: v[keep].reshape(-1, *v.shape[2:]) for k, v in obs.items() if k != "angle"}
        return _derived({k: v.mean(0) for k, v in sub.items()}, volume)

    return jackknife(estimate, t_len, blocks)


def integrated_autocorrelation(series: np.ndarray, c: float = 5.0) -> tuple[float, float]:
    """τ_int = 1/2 + Σ_{t≥1} ρ(t) with Sokal's automatic window (smallest W with W ≥ c τ_int(W)).

    ``series`` has shape (T,) or (T, chains); the autocorrelation is averaged over chains.
    Returns (τ_int, its error estimate √(2(2W+1)/T) τ_int, Madras–Sokal).
    """
    a = np.asarray(series, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    t_len = a.shape[0]
    a = a - a.mean(0)
    # FFT autocovariance per chain, averaged
    size = 1 << (2 * t_len - 1).bit_length()
    f = np.fft.rfft(a, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:t_len].mean(1)
    if acov[0] <= 0:
        return 0.5, 0.0
    rho = acov / acov[0]
    tau = 0.5
    window = t_len - 1
    for w in range(1, t_len):
        tau += rho[w]
        if w >= c * tau:
            window = w
            break
    tau = max(tau, 0.5)
    return float(tau), float(tau * math.sqrt(2 * (2 * window + 1) / t_len))


def angle_histogram(
    angle: np.ndarray, log_w: np.ndarray | None = None, bins: int = 36
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Density histogram of arg M on [0, 2π), optionally reweighted; returns (edges, dens, err)."""
    edges = np.linspace(0, 2 * math.pi, bins + 1)
    if log_w is None:
        w = np.ones_like(angle)
    else:
        lw = np.where(np.isfinite(log_w), log_w, -np.inf)
        w = np.exp(lw - lw.max())
    idx = np.clip(np.digitize(angle, edges) - 1, 0, bins - 1)
    width = edges[1] - edges[0]
    tot = w.sum()
    mass = np.bincount(idx, weights=w, minlength=bins) / tot
    # delta-method error of a self-normalised bin fraction: Σ w² (1_bin − p)² / (Σ w)²
    err = np.array(
        [math.sqrt(((w * ((idx == k) - mass[k])) ** 2).sum()) / tot for k in range(bins)]
    )
    return edges, mass / width, err / width
