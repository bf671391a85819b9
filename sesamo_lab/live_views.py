"""Live pictures for the dashboard: what a model's samples look like, as PNG bytes.

The dashboard redraws these while training runs in a background thread, so they are plain
matplotlib ``Figure`` objects rendered with the Agg canvas (no pyplot state, thread-safe enough
for one painter) and shipped to the browser as an ``ipywidgets.Image``. A PNG in an Image widget
updates the same way in JupyterLab, Voila and a headless browser, and tests can compare bytes.

Which picture fits depends on the field:

* two components (the Gaussian mixture, the 2-site Hubbard model): a 2-D histogram of the model
  samples beside the exact density exp(-S)/Z on the same grid (Z from quadrature on the grid when
  the target has no exact log Z), plus the sector weights (model vs exact) where they are known;
* a complex lattice field: a 2-D histogram of the magnetisation M/V in the complex plane, beside
  a histogram of |phi_x|;
* a real lattice field: a histogram of the magnetisation M/V and one of all field values phi_x.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .models import SamplingModel
from .targets.base import Target

DPI = 80
# Fixed margins instead of constrained layout: the layout solver costs more than the drawing,
# and the live pictures are redrawn many times with the same axes.
_MARGINS = {"left": 0.06, "right": 0.98, "bottom": 0.16, "top": 0.84}


def figure_png(fig: Figure) -> bytes:
    """Render a Figure to PNG bytes without touching pyplot."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def placeholder_png(text: str, size: tuple[float, float] = (9.0, 3.6)) -> bytes:
    """A blank picture with a centred line of text (before the first training step)."""
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="0.35")
    ax.set_axis_off()
    return figure_png(fig)


def running_mean(v: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` entries (fewer at the start).

    A single batch's KL estimate fluctuates around its small true value and can even be
    negative; the mean of a few batches is what a log axis can show.
    """
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


# --- training curves -----------------------------------------------------------------------------
def curves_png(history, log_z_known: bool, title: str = "") -> bytes:
    """Free energy (the loss), reverse KL (exact log Z) and batch ESS against the step."""
    fig = Figure(figsize=(9.0, 2.6))
    fig.subplots_adjust(**_MARGINS, wspace=0.25)
    ax_loss, ax_kl, ax_ess = fig.subplots(1, 3)
    steps = np.asarray(history.step)
    ax_loss.plot(steps, history.loss, color="C0", lw=1)
    ax_loss.set_title("loss  E[log q + S]", fontsize=10)
    if log_z_known:
        kl = np.asarray([np.nan if v is None else v for v in history.kl], dtype=float)
        ax_kl.semilogy(steps, np.clip(running_mean(kl, 10), 1e-5, None), color="C1", lw=1)
        ax_kl.yaxis.set_minor_formatter(NullFormatter())  # no clutter within one decade
        ax_kl.set_title("reverse KL(q‖p), 10-step mean", fontsize=10)
    else:
        ax_kl.text(0.5, 0.5, "log Z unknown:\nKL = loss + log Z", ha="center", va="center")
        ax_kl.set_axis_off()
    ax_ess.plot(steps, history.ess, color="C2", lw=1)
    ax_ess.set_ylim(0, 1.02)
    ax_ess.set_title("batch ESS", fontsize=10)
    for ax in (ax_loss, ax_kl, ax_ess):
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return figure_png(fig)


# --- sector weights ------------------------------------------------------------------------------
@dataclass
class SectorReference:
    """A symmetry's sectors and, where known, their exact target masses."""

    symmetry: object
    names: list[str]
    exact: np.ndarray | None


def sector_reference(model: SamplingModel, target: Target) -> SectorReference | None:
    """The model's own group if it has one (e.g. Z4 on a Z8 mixture), else the target's."""
    sym = getattr(model, "symmetry", None) or target.symmetry()
    if sym is None or sym.num_elements > 16 or sym.num_elements < 2:
        return None
    exact = target.sector_masses(sym)
    return SectorReference(
        sym, sym.element_names(), None if exact is None else exact.double().cpu().numpy()
    )


def _sector_bars(ax, ref: SectorReference, x: torch.Tensor, model: SamplingModel) -> None:
    k = ref.symmetry.num_elements
    u = ref.symmetry.sector(x)
    freq = torch.bincount(u.cpu(), minlength=k).double().numpy() / max(1, u.numel())
    pos = np.arange(k)
    width = 0.4 if ref.exact is not None else 0.7
    ax.bar(pos - (width / 2 if ref.exact is not None else 0), freq, width, label="model")
    if ref.exact is not None:
        ax.bar(pos + width / 2, ref.exact, width, label="exact", color="0.6")
    learned = model.learned_sector_probs()
    if learned is not None and getattr(model.modulation, "learnable", False):
        ax.plot(pos, learned.double().cpu().numpy(), "k_", ms=14, mew=2, label="learned $p_b$")
    ax.set_xticks(pos, [str(i) for i in range(k)], fontsize=8)
    ax.set_xlabel("sector u", fontsize=9)
    ax.set_title("sector weights", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.tick_params(labelsize=8)


def finite_samples(model: SamplingModel, n: int) -> torch.Tensor:
    """``n`` model samples without gradient, dropping any with non-finite entries."""
    with torch.no_grad():
        x = model.sample(n).detach()
    return x[torch.isfinite(x.reshape(x.shape[0], -1)).all(-1)]


# --- pictures of the samples ---------------------------------------------------------------------
class LiveView:
    """Draws a picture of ``n`` model samples; subclasses choose which picture."""

    kind = "samples"

    def __init__(self, target: Target):
        self.target = target

    def render(self, model: SamplingModel, n: int, title: str = "") -> bytes:
        return figure_png(self.figure(finite_samples(model, n), model, title))

    def figure(self, x: torch.Tensor, model: SamplingModel, title: str) -> Figure:
        raise NotImplementedError


class PlaneDensityView(LiveView):
    """Model samples (2-D histogram) beside the exact density, for two-component fields."""

    kind = "density"

    def __init__(self, target: Target, extent: float, bins: int = 90):
        super().__init__(target)
        self.extent = float(extent)
        self.edges = np.linspace(-self.extent, self.extent, bins + 1)
        centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        gx, gy = np.meshgrid(centres, centres, indexing="xy")
        pts = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], -1))
        anchor = next(iter(target.buffers()), torch.zeros((), dtype=torch.float64))
        dtype = anchor.dtype if anchor.dtype.is_floating_point else torch.float64
        pts = pts.reshape(-1, *target.event_shape)  # e.g. (1, 2) for the 2-site Hubbard model
        with torch.no_grad():
            s = target.action(pts.to(dtype=dtype, device=anchor.device)).double().cpu().numpy()
        log_p = -s.reshape(bins, bins)
        area = (self.edges[1] - self.edges[0]) ** 2
        if target.log_z is not None:
            self.exact = np.exp(log_p - target.log_z)
        else:  # normalise on the grid (the grid covers the target by construction)
            w = np.exp(log_p - log_p.max())
            self.exact = w / (w.sum() * area)
        self.vmax = float(self.exact.max())
        self.sectors: SectorReference | None = None
        self._sector_model: int | None = None

    def figure(self, x, model, title):
        if self._sector_model != id(model):
            self.sectors = sector_reference(model, self.target)
            self._sector_model = id(model)
        xs = x.reshape(x.shape[0], 2).double().cpu().numpy()
        h, _, _ = np.histogram2d(xs[:, 1], xs[:, 0], bins=[self.edges, self.edges])
        area = (self.edges[1] - self.edges[0]) ** 2
        hist = h / (max(1, len(xs)) * area)
        ncols = 3 if self.sectors is not None else 2
        fig = Figure(figsize=(3.1 * ncols, 3.1))
        fig.subplots_adjust(**_MARGINS, wspace=0.25)
        axes = fig.subplots(1, ncols)
        e = self.extent
        for ax, data, name in ((axes[0], hist, "model samples"), (axes[1], self.exact, "target")):
            ax.imshow(
                data,
                origin="lower",
                extent=(-e, e, -e, e),
                vmin=0,
                vmax=self.vmax,
                cmap="magma",
                interpolation="nearest",
            )
            ax.set_title(name, fontsize=10)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=8)
        if self.sectors is not None:
            _sector_bars(axes[2], self.sectors, x, model)
        if title:
            fig.suptitle(title, fontsize=10)
        return fig


class RealFieldView(LiveView):
    """Histograms of the magnetisation M/V and of all field values, for real lattice fields."""

    kind = "histogram"

    def figure(self, x, model, title):
        flat = x.reshape(x.shape[0], -1).double().cpu()
        mag = flat.mean(-1).numpy()
        fig, (ax_m, ax_f) = _two_panels()
        ax_m.hist(mag, bins=60, density=True, color="C0")
        ax_m.set_title("magnetisation M/V", fontsize=10)
        vals = flat.flatten().numpy()
        ax_f.hist(vals[:200_000], bins=80, density=True, color="C3")
        ax_f.set_title("field values $\\phi_x$", fontsize=10)
        return _finish(fig, (ax_m, ax_f), title)


class ComplexFieldView(LiveView):
    """M/V in the complex plane (2-D histogram) and |phi_x|, for complex lattice fields.

    ``split(x)`` returns the real and imaginary parts, each of shape (batch, V).
    """

    kind = "histogram"

    def __init__(self, target: Target, split):
        super().__init__(target)
        self.split = split

    def figure(self, x, model, title):
        re, im = (t.double().cpu() for t in self.split(x))
        m_re, m_im = re.mean(-1).numpy(), im.mean(-1).numpy()
        r = float(np.quantile(np.hypot(m_re, m_im), 0.995)) * 1.15 + 1e-6
        fig, (ax_m, ax_a) = _two_panels()
        ax_m.hist2d(m_re, m_im, bins=60, range=[[-r, r], [-r, r]], cmap="magma")
        ax_m.set_aspect("equal")
        ax_m.set_title("M/V in the complex plane", fontsize=10)
        ax_a.hist(np.hypot(re, im).flatten().numpy()[:200_000], bins=80, density=True, color="C3")
        ax_a.set_title("$|\\phi_x|$", fontsize=10)
        return _finish(fig, (ax_m, ax_a), title)


def plane_extent(target: Target) -> float:
    """Half-width of the square that shows a two-component target."""
    radius, sigma = getattr(target, "radius", None), getattr(target, "sigma", None)
    if radius is not None and sigma is not None:  # ring of Gaussians
        return float(radius + 4 * sigma)
    mean_field, u_tilde = getattr(target, "mean_field", None), getattr(target, "u_tilde", None)
    if mean_field is not None and u_tilde is not None:  # 2-site Hubbard: modes at +-m, width U~
        return float(mean_field + 4.5 * math.sqrt(u_tilde) + 2)
    if target.can_sample:
        x = target.sample(20_000).double()
        return float(x.abs().quantile(0.999) * 1.1)
    return 3.0 * float(target.reference_scale())


def view_for(target: Target) -> LiveView:
    """The picture that fits the target's field (see the module docstring)."""
    if getattr(target, "complex_field", False):  # fields (batch, 2, L_t, L_x): Re, Im channels
        return ComplexFieldView(target, lambda x: (x[:, 0].flatten(1), x[:, 1].flatten(1)))
    if math.prod(target.event_shape) == 2:
        return PlaneDensityView(target, plane_extent(target))
    return RealFieldView(target)


def sample_figure(model: SamplingModel, target: Target, n: int = 20_000, title: str = "") -> Figure:
    """The dashboard's picture of ``n`` samples as a Figure (for notebooks: ``display(fig)``)."""
    return view_for(target).figure(finite_samples(model, n), model, title)


def _two_panels() -> tuple[Figure, tuple]:
    """The side-by-side layout shared by the lattice-field views."""
    fig = Figure(figsize=(6.4, 3.0))
    fig.subplots_adjust(**_MARGINS, wspace=0.25)
    return fig, tuple(fig.subplots(1, 2))


def _finish(fig: Figure, axes, title: str | None) -> Figure:
    for ax in axes:
        ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
