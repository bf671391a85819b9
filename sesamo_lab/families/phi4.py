"""The φ⁴ family: real scalar (broken Z2) and complex (exact and broken U(1)) lattice fields.

Presets (couplings in the ordered phase; docs/phi4.md has the evidence):

* scalar-phi4-broken      8×8 real field, κ = 0.3, λ = 0.02, h = 0.004: Z2 with learned flip weight
* complex-phi4            8×8 complex field, κ = 0.3, λ = 0.02, h = 0: exact U(1) (uniform angle)
* complex-phi4-broken     8×8 complex field, h = 0.01: learned angle density (peak at 225°)
* *-4x4                   classroom variants on 4×4 (h scaled by 4 so the vacuum preference
                          h V ⟨|m|⟩ stays about the same)

Families: ``phi4`` (real field) and ``phi4c`` (complex field), so that ``model_kinds()`` lists
only what applies to each. The real field uses the kit's SESaMo (global Z2 flip, Ω = {M ≥ 0})
and every other model kind of the kit; the complex field uses ``u1.U1SliceSESaMo`` for "sesamo"
and a plain lattice flow for "realnvp" (the discrete baselines do not apply to a continuous U(1)).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..flows import ElementwiseAffine, realnvp
from ..lattice_flows import ChannelAffine, ChannelShift, lattice_realnvp, slice_flow
from ..metrics import ess
from ..model_kinds import ModelSpec
from ..models import SamplingModel
from ..observables import angle_histogram, configuration_observables, reweighted_estimates
from ..penalty import BijectivityPenalty
from ..plots import save_figure, training_curves_figure
from ..presets import (
    BREAKING_OPTION,
    Family,
    Option,
    Preset,
    backbone_kwargs,
    register_family,
    register_preset,
)
from ..targets.phi4 import ComplexPhi4, RealPhi4, make_phi4
from ..u1 import PiecewiseLinearAngle, U1SliceSESaMo, UniformAngle
from ..validation import ConfigError, choice, positive_int

SYMMETRIES = {"real": ("Z2", "none"), "complex": ("U1", "none")}


def modulation_is_learned(params: dict, breaking: float) -> bool:
    mode = params.get("modulation")
    if mode is None:
        return breaking != 0
    return choice("modulation", mode, ("exact", "learned")) == "learned"


def check_symmetry(params: dict, field: str) -> str:
    """The symmetry asked for must be one the field has: Z2 (real) or U1 (complex)."""
    asked = params.get("symmetry") or SYMMETRIES[field][0]
    allowed = SYMMETRIES[field]
    if asked not in allowed:
        raise ConfigError(
            f"symmetry {asked!r} is not a symmetry of the {field} phi^4 field; "
            f"allowed: {', '.join(allowed)}"
        )
    return asked


class Phi4Family(Family):
    """Shared by the real and the complex family; ``field`` says which."""

    name = "phi4"
    field = "real"
    options = (
        Option("--lattice", "lattice", str, "phi^4: lattice size L_t x L_x, e.g. 8x8 or 8", "LxL"),
        Option("--kappa", "kappa", float, "phi^4 hopping parameter kappa (finite)", "K"),
        Option("--lam", "lam", float, "phi^4 quartic coupling lambda (>= 0; > 0 if |kappa| large)"),
        BREAKING_OPTION,
        Option("--symmetry", "symmetry", str, "phi^4: Z2 (real field) or U1 (complex field)"),
    )

    # ---- target and models -------------------------------------------------------------------
    def build_target(self, params: dict) -> RealPhi4 | ComplexPhi4:
        check_symmetry(params, self.field)
        return make_phi4(
            self.field,
            params["lattice"],
            params["kappa"],
            params["lam"],
            params.get("breaking", 0.0),
        )

    def model_kinds(self) -> list[str]:
        if self.field == "complex":
            # U(1) is continuous: canonicalization needs a discrete group with a fundamental
            # domain and does not apply; VMoNF needs no symmetry at all.
            registered = super().model_kinds()
            return [k for k in ("sesamo", "realnvp", "vmonf") if k in registered]
        return super().model_kinds()

    def _flow_factory(self, event_shape, params: dict):
        kind = choice("flow", params.get("flow", "conv"), ("conv", "mlp"))
        kwargs = backbone_kwargs(params)
        if kind == "conv":
            kernel = positive_int("kernel", params.get("kernel", 3))
            linear = bool(params.get("linear", False))
            return lambda: lattice_realnvp(event_shape, kernel=kernel, linear=linear, **kwargs)
        return lambda: realnvp(event_shape, **kwargs)

    def _slice_flow(self, target, params: dict):
        """The U(1) slice model's flow (translation invariant, β only up to a constant)."""
        if target.lt * target.lx < 2:
            raise ConfigError(
                f"lattice must have at least 2 sites for the U(1) slice model, "
                f"got {target.lattice_label()}"
            )
        if choice("flow", params.get("flow", "conv"), ("conv", "mlp")) != "conv":
            raise ConfigError("flow 'mlp' is not available for the U(1) slice model; use conv")
        return slice_flow(
            (target.lt, target.lx),
            kernel=positive_int("kernel", params.get("kernel", 3)),
            **backbone_kwargs(params),
        )

    def model_spec(self, target, params: dict) -> ModelSpec:
        if target.complex_field:
            sym = None
        elif check_symmetry(params, self.field) == "none":
            sym = None
        else:
            sym = target.symmetry()
        return ModelSpec(
            event_shape=target.event_shape,
            flow_factory=self._flow_factory(target.event_shape, params),
            symmetry=sym,
            broken=modulation_is_learned(params, target.breaking),
            penalty=BijectivityPenalty(params["penalty_strength"], params["penalty_sharpness"]),
        )

    def build_model(self, kind: str, target, params: dict) -> SamplingModel:
        allowed = self.model_kinds()
        if kind not in allowed:
            raise ConfigError(
                f"model {kind!r} does not apply to {self.name} targets; "
                f"allowed: {', '.join(allowed)}"
            )
        if target.complex_field and kind == "sesamo":
            if check_symmetry(params, self.field) == "none":
                raise ConfigError("model 'sesamo' needs symmetry U1 for the complex field")
            flow = self._slice_flow(target, params)
            learned = modulation_is_learned(params, target.breaking)
            angle = (
                PiecewiseLinearAngle(positive_int("angle_nodes", params.get("angle_nodes", 64)))
                if learned
                else UniformAngle()
            )
            penalty = BijectivityPenalty(params["penalty_strength"], params["penalty_sharpness"])
            model: SamplingModel = U1SliceSESaMo(flow, (target.lt, target.lx), angle, penalty)
        else:
            model = super().build_model(kind, target, params)
        warm_start(model, target)
        return model

    # ---- metrics -----------------------------------------------------------------------------
    def extra_metrics(self, model: SamplingModel, target, n: int) -> dict:
        return phi4_metrics(model, target, min(n, 50_000))

    # ---- figures -----------------------------------------------------------------------------
    def write_figures(self, model, target, out_dir: Path, n: int, history=None) -> list[str]:
        x, log_w = draw_weighted(model, target, min(n, 50_000))
        obs = configuration_observables(x, target)
        names = [
            save_figure(field_histogram_figure(x, log_w, target), out_dir / "fields.png"),
            save_figure(magnetisation_figure(obs, log_w, target), out_dir / "magnetisation.png"),
        ]
        if target.complex_field:
            names.append(
                save_figure(angle_figure(obs, log_w, model, target), out_dir / "angle.png")
            )
        if history is not None and history.step:
            names.append(
                save_figure(training_curves_figure(history, False), out_dir / "training.png")
            )
        return names


def warm_start(model: SamplingModel, target) -> None:
    """Start the final shift at the mean-field vacuum: +v on φ (real) or on Re φ (complex).

    v = |φ| at the minimum of the constant-field potential. SESaMo's Ω is {M ≥ 0} (real) or
    {Re M > 0} (complex slice), so the positive vacuum starts (almost) all samples inside Ω; a
    plain flow starts in that one vacuum as well (it collapses there anyway).
    """
    v = target.minimum_field()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (ChannelAffine, ChannelShift)):
                mod.shift[0].fill_(v)
            elif isinstance(mod, ElementwiseAffine):
                shift = mod.shift.reshape(-1) if not target.complex_field else mod.shift[0]
                shift.fill_(v)


@torch.no_grad()
def draw_weighted(model, target, n: int, chunk: int = 10_000) -> tuple[torch.Tensor, np.ndarray]:
    """n samples x ~ q with log w = −S(x) − log q(x) (float64 numpy)."""
    model.eval()
    xs, lws = [], []
    left = n
    while left > 0:
        m = min(chunk, left)
        d = model.draw(m)
        xs.append(d.x.detach())
        lws.append((-target.action(d.x) - d.log_q).double().cpu())
        left -= m
    return torch.cat(xs), torch.cat(lws).numpy()


def phi4_metrics(model, target, n: int) -> dict:
    """Reweighted observables, sector / angle comparisons, couplings in both conventions."""
    x, log_w = draw_weighted(model, target, n)
    obs = configuration_observables(x, target)
    out: dict = {
        "observables": reweighted_estimates(obs, log_w, target.volume),
        "observables_unweighted": reweighted_estimates(obs, np.zeros_like(log_w), target.volume),
        "ess_observables_sample": ess(torch.as_tensor(log_w)),
    }
    try:
        m2, lam0 = target.standard_couplings()
        out["standard_couplings"] = {"m2": m2, "lambda0": lam0}
    except ConfigError:
        out["standard_couplings"] = None
    if target.complex_field:
        out["angle"] = angle_comparison(obs, log_w, model, target)
    else:
        out["flip"] = flip_comparison(obs, log_w, model)
    return out


def _weights(log_w: np.ndarray) -> np.ndarray:
    lw = np.where(np.isfinite(log_w), log_w, -np.inf)
    return np.exp(lw - lw.max())


def flip_comparison(obs: dict, log_w: np.ndarray, model) -> dict:
    """Target mass of the M < 0 sector (reweighted, ± delta-method error) vs the learned p_b."""
    w = _weights(log_w)
    neg = (obs["m"] < 0).astype(float)
    p = float((w * neg).sum() / w.sum())
    err = float(math.sqrt(((w * (neg - p)) ** 2).sum()) / w.sum())
    learned = model.learned_sector_probs()
    return {
        "reweighted_negative_mass": p,
        "reweighted_negative_mass_error": err,
        "learned_flip_probability": float(learned[1]) if learned is not None else None,
        "model_negative_fraction": float(neg.mean()),
    }


def angle_comparison(obs: dict, log_w: np.ndarray, model, target, bins: int = 24) -> dict:
    """Learned p_b(α) against the reweighted histogram of arg M (per bin, in units of σ)."""
    edges, dens, err = angle_histogram(obs["angle"], log_w, bins)
    out: dict = {"bins": bins, "reweighted_density": dens.tolist(), "error": err.tolist()}
    w = _weights(log_w)
    preferred = target.preferred_angle()
    ref = preferred if preferred is not None else 0.0
    c = np.cos(obs["angle"] - ref)
    mean_cos = float((w * c).sum() / w.sum())
    out["reference_angle"] = ref
    out["reweighted_mean_cos"] = mean_cos
    out["reweighted_mean_cos_error"] = float(math.sqrt(((w * (c - mean_cos)) ** 2).sum()) / w.sum())
    if isinstance(model, U1SliceSESaMo):
        grid = torch.linspace(0, 2 * math.pi, 2049, dtype=torch.float64)[:-1]
        with torch.no_grad():
            p = model.angle_density(grid.to(model.dtype)).double()
        dx = 2 * math.pi / 2048
        out["learned_mean_cos"] = float((p * torch.cos(grid - ref)).sum() * dx)
        # learned density averaged over each histogram bin
        per_bin = p.reshape(bins, -1).mean(1).numpy() if 2048 % bins == 0 else None
        if per_bin is None:
            idx = np.clip(np.digitize(grid.numpy(), edges) - 1, 0, bins - 1)
            per_bin = np.bincount(idx, weights=p.numpy(), minlength=bins) / np.bincount(
                idx, minlength=bins
            )
        dev = (per_bin - dens) / np.maximum(err, 1e-12)
        out["learned_binned"] = per_bin.tolist()
        out["max_abs_deviation_sigma"] = float(np.abs(dev).max())
        out["chi2_per_bin"] = float((dev**2).mean())
    return out


# ---- figures ---------------------------------------------------------------------------------
def field_histogram_figure(x: torch.Tensor, log_w: np.ndarray, target) -> Figure:
    """Histogram of single-site field values: model samples and reweighted to the target."""
    w = _weights(log_w)
    fig = Figure(figsize=(10 if target.complex_field else 5.5, 4), layout="constrained")
    parts = [("Re φ", x[:, 0]), ("Im φ", x[:, 1])] if target.complex_field else [("φ", x)]
    axes = fig.subplots(1, len(parts), squeeze=False)[0]
    for ax, (label, comp) in zip(axes, parts, strict=True):
        vals = comp.reshape(comp.shape[0], -1).double().cpu().numpy()
        sites = vals.shape[1]
        ww = np.repeat(w, sites)
        flat = vals.ravel()
        rng = (np.quantile(flat, 0.001), np.quantile(flat, 0.999))
        ax.hist(flat, bins=80, range=rng, density=True, histtype="step", label="model q")
        ax.hist(
            flat,
            bins=80,
            range=rng,
            weights=ww,
            density=True,
            histtype="step",
            label="reweighted (target)",
        )
        ax.set_xlabel(f"site value {label}")
        ax.set_ylabel("density")
        ax.legend()
    fig.suptitle(
        f"field values, {target.lattice_label()}, κ={target.kappa:g}, λ={target.lam:g}, "
        f"h={target.breaking:g}"
    )
    return fig


def magnetisation_figure(obs: dict, log_w: np.ndarray, target) -> Figure:
    """M/V on the real line (two vacua), or in the complex plane (a ring)."""
    w = _weights(log_w)
    if not target.complex_field:
        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.subplots()
        m = obs["m"]
        lim = float(np.abs(m).max()) * 1.05
        ax.hist(m, bins=100, range=(-lim, lim), density=True, histtype="step", label="model q")
        ax.hist(
            m,
            bins=100,
            range=(-lim, lim),
            weights=w,
            density=True,
            histtype="step",
            label="reweighted (target)",
        )
        ax.set_xlabel("M / V")
        ax.set_ylabel("density")
        ax.legend()
        ax.set_title(f"magnetisation, {target.lattice_label()}, h={target.breaking:g}")
        return fig
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    lim = float(obs["abs_m"].max()) * 1.05
    for ax, weights, title in ((axes[0], None, "model q"), (axes[1], w, "reweighted (target)")):
        ax.hist2d(
            obs["m_re"],
            obs["m_im"],
            bins=80,
            range=[[-lim, lim], [-lim, lim]],
            weights=weights,
            density=True,
            cmap="magma",
        )
        ax.set_aspect("equal")
        ax.set_xlabel("Re M / V")
        ax.set_title(title)
    axes[0].set_ylabel("Im M / V")
    fig.suptitle(
        f"magnetisation in the complex plane, {target.lattice_label()}, h={target.breaking:g}"
    )
    return fig


def angle_figure(obs: dict, log_w: np.ndarray, model, target, bins: int = 36) -> Figure:
    """Learned p_b(α) against the target's angle distribution (reweighted histogram ± 1σ)."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    edges, dens, err = angle_histogram(obs["angle"], log_w, bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    deg = 180 / math.pi
    ax.errorbar(centres * deg, dens, yerr=err, fmt="o", ms=3, label="target (reweighted)")
    _, dq, _ = angle_histogram(obs["angle"], None, bins)
    ax.step(edges[:-1] * deg, dq, where="post", alpha=0.6, label="model samples")
    if isinstance(model, U1SliceSESaMo):
        grid = torch.linspace(0, 2 * math.pi, 721, dtype=torch.float64)
        with torch.no_grad():
            p = model.angle_density(grid.to(model.dtype)).double().cpu().numpy()
        ax.plot(grid.numpy() * deg, p, "k-", lw=1.5, label="learned $p_b(α)$")
    ax.set_xlabel("arg M (degrees)")
    ax.set_ylabel("density")
    ax.set_xlim(0, 360)
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.set_title(f"angle of M, h={target.breaking:g}")
    return fig


# ---- presets ---------------------------------------------------------------------------------
_COMMON = {
    "kappa": 0.3,
    "lam": 0.02,
    "symmetry": None,
    "modulation": None,
    "flow": "conv",
    "couplings": 8,
    "hidden": 16,
    "depth": 2,
    "kernel": 3,
    "angle_nodes": 64,
    "linear": True,
    "penalty_strength": 1000.0,
    "penalty_sharpness": 0.1,
}


class ComplexPhi4Family(Phi4Family):
    name = "phi4c"
    field = "complex"


register_family(Phi4Family())
register_family(ComplexPhi4Family())


def _preset(
    name, family, description, lattice, breaking, steps, batch, lr, train_options=None, **extra
):
    register_preset(
        Preset(
            name=name,
            family=family,
            description=description,
            params={**_COMMON, "lattice": lattice, "breaking": breaking, **extra},
            steps=steps,
            batch_size=batch,
            lr=lr,
            eval_samples=50_000,
            train_options=train_options or {},
        )
    )


_ORDERED = "kappa=0.3, lam=0.02 (ordered: <|M|>/V ~ 2.2, m^2=-0.8, lambda0=0.22)"
_preset(
    "scalar-phi4-broken",
    "phi4",
    f"real phi^4 8x8, {_ORDERED}, h=0.004: broken Z2, learned flip probability",
    "8x8",
    0.004,
    4500,
    192,
    2e-3,
)
_preset(
    "complex-phi4",
    "phi4c",
    f"complex phi^4 8x8, {_ORDERED}, h=0: exact U(1) by the slice construction",
    "8x8",
    0.0,
    5000,
    192,
    2e-3,
)
_preset(
    "complex-phi4-broken",
    "phi4c",
    f"complex phi^4 8x8, {_ORDERED}, h=0.01: broken U(1), learned angle density (peak 225 deg)",
    "8x8",
    0.01,
    5000,
    192,
    2e-3,
)
_preset(
    "scalar-phi4-broken-4x4",
    "phi4",
    "classroom: real phi^4 4x4, kappa=0.3, lam=0.02, h=0.016: broken Z2",
    "4x4",
    0.016,
    400,
    256,
    2e-3,
)
_preset(
    "complex-phi4-4x4",
    "phi4c",
    "classroom: complex phi^4 4x4, kappa=0.3, lam=0.02, h=0: exact U(1)",
    "4x4",
    0.0,
    400,
    256,
    8e-3,  # measured (docs/phi4.md): ESS 0.94 (exact), 0.92 (broken) at 400 steps, ~20 s
)
_preset(
    "complex-phi4-broken-4x4",
    "phi4c",
    "classroom: complex phi^4 4x4, kappa=0.3, lam=0.02, h=0.04: broken U(1)",
    "4x4",
    0.04,
    400,
    256,
    8e-3,  # measured (docs/phi4.md): ESS 0.94 (exact), 0.92 (broken) at 400 steps, ~20 s
    # 400 steps are too few for the angle density at the default 5 x lr; a faster rate for it
    # lets p_b(α) match the reweighted target within the classroom budget.
    train_options={"modulation_lr": 0.04},
)
