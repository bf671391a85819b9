"""Matplotlib figures written by the command line (and reused by the notebooks).

Figures are built on ``matplotlib.figure.Figure`` directly, so they work headless without
touching the global pyplot state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure


def density_grid(
    log_density: Callable[[torch.Tensor], torch.Tensor], extent: float, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate exp(log_density) at the centres of a bins x bins grid on [-extent, extent]^2."""
    edges = np.linspace(-extent, extent, bins + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = np.meshgrid(centres, centres, indexing="xy")
    pts = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], -1), dtype=torch.float64)
    with torch.no_grad():
        dens = log_density(pts).exp().reshape(bins, bins).cpu().numpy()
    return edges, dens


def sample_density(samples: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Normalised 2-D histogram (density per unit area) on the given square bin edges."""
    h, _, _ = np.histogram2d(samples[:, 1], samples[:, 0], bins=[edges, edges])
    area = (edges[1] - edges[0]) ** 2
    return h / (max(1, len(samples)) * area)


def draw_rays(ax, angles: Sequence[float], extent: float) -> None:
    for a in angles:
        ax.plot(
            [0, 2 * extent * math.cos(a)],
            [0, 2 * extent * math.sin(a)],
            color="white",
            lw=0.8,
            ls="--",
            alpha=0.8,
        )


def density_panel(
    ax, data: np.ndarray, extent: float, vmax: float, boundary_angles: Sequence[float], title: str
):
    """One square density image on [-extent, extent]^2 with the sector boundaries drawn."""
    im = ax.imshow(
        data,
        origin="lower",
        extent=(-extent, extent, -extent, extent),
        vmin=0,
        vmax=vmax,
        cmap="magma",
        interpolation="nearest",
    )
    draw_rays(ax, boundary_angles, extent)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_title(title)
    ax.set_aspect("equal")
    return im


def density_comparison_figure(
    samples: np.ndarray,
    log_density: Callable[[torch.Tensor], torch.Tensor],
    extent: float,
    boundary_angles: Sequence[float] = (),
    title_model: str = "model samples",
    title_target: str = "exact target",
    bins: int = 120,
    suptitle: str | None = None,
) -> Figure:
    """Model sample density beside the exact target density, same colour scale and sectors."""
    edges, exact = density_grid(log_density, extent, bins)
    hist = sample_density(samples, edges)
    vmax = float(max(exact.max(), 1e-12))
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    for ax, data, title in ((axes[0], hist, title_model), (axes[1], exact, title_target)):
        im = density_panel(ax, data, extent, vmax, boundary_angles, title)
        ax.set_xlabel("$x_1$")
    axes[0].set_ylabel("$x_2$")
    fig.colorbar(im, ax=axes, shrink=0.85, label="density")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def training_curves_figure(history, log_z_known: bool) -> Figure:
    """Loss (or KL), batch ESS and learned sector probabilities against the step."""
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    steps = np.asarray(history.step)
    if log_z_known:
        kl = np.asarray([np.nan if v is None else v for v in history.kl], dtype=float)
        axes[0].semilogy(steps, np.clip(kl, 1e-5, None))
        axes[0].set_ylabel("reverse KL (exact log Z)")
    else:
        axes[0].plot(steps, history.loss)
        axes[0].set_ylabel("free energy  E[log q + S]")
    axes[1].plot(steps, history.ess)
    axes[1].set_ylim(0, 1.02)
    axes[1].set_ylabel("batch ESS")
    if history.sector_probs:
        probs = np.asarray(history.sector_probs)
        if probs.shape[1] <= 16:
            axes[2].plot(history.sector_step, probs)
        else:
            axes[2].plot(history.sector_step, probs.max(1), label="max")
            axes[2].plot(history.sector_step, probs.min(1), label="min")
            axes[2].legend()
        axes[2].set_ylabel("learned $p_b(u)$")
    else:
        axes[2].text(
            0.5, 0.5, "no learned modulation", ha="center", va="center", transform=axes[2].transAxes
        )
        axes[2].set_axis_off()
    for ax in axes:
        ax.set_xlabel("step")
    return fig


def save_figure(fig: Figure, path: Path) -> str:
    fig.savefig(path, dpi=110)
    return path.name
