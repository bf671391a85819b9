"""The Hubbard family (method.md 4.4): presets hubbard-2x1, hubbard-4x8 and hubbard-18x100.

Field phi of shape (N_t, N_x). SESaMo uses the site-flip group (Z2)^{N_x} with Omega = {every
site's time-sum >= 0} and the modulation of ``hubbard_modulation`` (exact global Z2 x learned
flips of the first N_x - 1 sites).

Warm start: the flow's final elementwise affine layer starts at phi = m (m >= 0 minimising the
action on uniform fields, ``HubbardTarget.mean_field``) with width sqrt(U~), the Gaussian part's
width. Without it the flow would have to travel from N(0, 1) to |phi| ~ U~ (18 for hubbard-2x1)
at Adam's step size, thousands of steps. The same start is given to every model kind, so the
baselines are compared fairly (a plain RealNVP then sits in the all-positive mode and stays).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..flows import ElementwiseAffine, realnvp
from ..hubbard_modulation import SECTOR_MODELS, split_element
from ..hubbard_modulation import site_flip_modulation as make_modulation
from ..lattices import LATTICES, build_lattice, validate_hopping
from ..model_kinds import ModelSpec
from ..models import SamplingModel, SESaMo
from ..penalty import BijectivityPenalty
from ..plots import density_comparison_figure, save_figure, training_curves_figure
from ..presets import Family, Option, Preset, backbone_kwargs, register_family, register_preset
from ..targets.hubbard import HubbardTarget
from ..validation import ConfigError, choice, positive_int

MAX_BAR_SUBSETS = 32  # above this the bar chart shows per-site flip marginals


def parse_lattice(value: object) -> str:
    """The --lattice value for this family: one of LATTICES (sizes come from --sites)."""
    if not isinstance(value, str):
        raise ConfigError(f"lattice must be one of {', '.join(LATTICES)} (got {value!r})")
    name = value.strip().lower()
    if name not in LATTICES:
        raise ConfigError(
            f"unknown lattice {value!r} for Hubbard presets; allowed: {', '.join(LATTICES)} "
            "(the number of sites comes from --sites)"
        )
    return name


def modulation_is_learned(params: dict) -> bool:
    mode = params.get("modulation")
    if mode is None:
        return True  # the site flips are a broken symmetry of the Hubbard model
    return choice("modulation", mode, ("exact", "learned")) == "learned"


def warm_start(model: SamplingModel, target: HubbardTarget) -> None:
    """Put every final elementwise affine layer at phi = m with width sqrt(U~)."""
    m, width = target.mean_field, math.sqrt(target.u_tilde)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, ElementwiseAffine):
                mod.shift.fill_(m)
                mod.log_scale.fill_(math.log(width))


class HubbardFamily(Family):
    name = "hubbard"
    options = (
        Option(
            "--lattice",
            "lattice",
            str,
            "Hubbard: " + "|".join(LATTICES) + " (with --sites); phi^4: size, e.g. 8x8",
            "NAME",
        ),
        Option("--sites", "sites", int, "number of lattice sites N_x (>= 2)", "N"),
        Option("--nt", "nt", int, "number of time slices N_t (>= 1)", "N"),
        Option("--u", "u", float, "on-site interaction U (> 0)", "U"),
        Option("--beta", "beta", float, "inverse temperature beta (> 0)", "B"),
        Option("--hopping", "hopping", float, "hopping strength kappa (> 0)", "K"),
        Option(
            "--sector-model",
            "sector_model",
            str,
            "Hubbard p_b over site flips: auto|table|bernoulli",
            "KIND",
        ),
    )

    def build_target(self, params: dict) -> HubbardTarget:
        if params.get("hopping_matrix") is not None:
            k = validate_hopping(params["hopping_matrix"], "hopping_matrix")
            lattice = "custom"
        else:
            lattice = parse_lattice(params["lattice"])
            sites = positive_int("sites", params["sites"])
            k = build_lattice(lattice, sites, params.get("hopping", 1.0))
        if k.shape[0] < 2 and params["nt"] < 2:
            raise ConfigError("sites x nt must be >= 2 (the flow couples two halves)")
        return HubbardTarget(
            k,
            params["u"],
            params["beta"],
            params["nt"],
            stabilise_every=params.get("stabilise_every", 8),
            lattice=lattice,
        )

    def model_spec(self, target: HubbardTarget, params: dict) -> ModelSpec:
        kwargs = backbone_kwargs(params)
        return ModelSpec(
            event_shape=target.event_shape,
            flow_factory=lambda: realnvp(target.event_shape, **kwargs),
            symmetry=target.symmetry(),
            broken=modulation_is_learned(params),
            penalty=BijectivityPenalty(params["penalty_strength"], params["penalty_sharpness"]),
        )

    def build_model(self, kind: str, target: HubbardTarget, params: dict) -> SamplingModel:
        sector_model = choice("sector_model", params.get("sector_model") or "auto", SECTOR_MODELS)
        if kind == "sesamo":
            spec = self.model_spec(target, params)
            modulation = make_modulation(target.nx, spec.broken, sector_model)
            model: SamplingModel = SESaMo(
                spec.flow_factory(), spec.symmetry, modulation, spec.penalty
            )
        else:
            model = super().build_model(kind, target, params)
        warm_start(model, target)
        return model

    # ---- metrics -----------------------------------------------------------------------------

    def extra_metrics(self, model: SamplingModel, target: HubbardTarget, n: int) -> dict:
        n = min(n, 20_000)
        stats = reweighted_sector_stats(model, target, n)
        out = {"hubbard": {k: v for k, v in stats.items() if k != "site_sums"}}
        exact = target.sector_masses(target.symmetry())
        learned = model.learned_sector_probs()
        if exact is not None and learned is not None:
            err = (learned.double().cpu() - exact).abs().max()
            out["hubbard"]["max_learned_sector_error"] = float(err)
        return out

    # ---- figures -----------------------------------------------------------------------------

    def write_figures(self, model, target: HubbardTarget, out_dir: Path, n: int, history=None):
        names = []
        if target.nx == 2 and target.nt == 1:
            x = model.sample(min(n, 200_000)).detach().double().cpu().reshape(-1, 2).numpy()
            extent = target.mean_field + 4.5 * math.sqrt(target.u_tilde) + 2
            log_z = target.log_z

            def log_density(p: torch.Tensor) -> torch.Tensor:
                return -target.action(p.to(torch.float64).reshape(-1, 1, 2)) - log_z

            fig = density_comparison_figure(
                x,
                log_density,
                extent,
                [0.0, math.pi / 2, math.pi, 3 * math.pi / 2],
                title_model=f"{type(model).__name__} samples",
                title_target="exact target",
                suptitle=f"2-site Hubbard, U = {target.u:g}, beta = {target.beta:g}, N_t = 1",
            )
            names.append(save_figure(fig, out_dir / "density.png"))
        stats = reweighted_sector_stats(model, target, min(n, 20_000))
        if not (target.nx == 2 and target.nt == 1):
            names.append(save_figure(site_sum_figure(stats, target), out_dir / "site_sums.png"))
        stats_fig = sector_weights_figure(stats, model, target)
        names.append(save_figure(stats_fig, out_dir / "sector_weights.png"))
        if history is not None and history.step:
            fig = training_curves_figure(history, target.log_z is not None)
            names.append(save_figure(fig, out_dir / "training.png"))
        return names


@torch.no_grad()
def reweighted_sector_stats(
    model: SamplingModel, target: HubbardTarget, n: int, chunk: int = 2000
) -> dict:
    """Flow and reweighted-target statistics of the site time-sums and flip patterns.

    Self-normalised importance weights w = exp(-S - log q) turn averages over x ~ q into target
    averages. Returned: site_sums (numpy, samples x sites) with weights, the per-site flip
    marginal P(sign of site j != sign of the last site) for q and for the target (with a
    delta-method standard error), the same for whole subsets when there are at most
    MAX_BAR_SUBSETS of them, and the importance-sampling ESS of these samples.
    """
    sums, log_w = [], []
    left = n
    while left > 0:
        m = min(chunk, left)
        d = model.draw(m)
        log_w.append((-target.action(d.x).double() - d.log_q.double()).cpu())
        sums.append(d.x.double().sum(-2).reshape(m, -1).cpu())
        left -= m
    site_sums = torch.cat(sums)
    lw = torch.cat(log_w)
    lw = torch.where(torch.isfinite(lw), lw, torch.full_like(lw, -math.inf))
    w = torch.softmax(lw, 0)
    nx = site_sums.shape[1]
    negative = (site_sums < 0).long()
    u = (negative * 2 ** torch.arange(nx)).sum(-1)
    _, s = split_element(u, nx)
    rel_bits = ((s.unsqueeze(-1) >> torch.arange(nx - 1)) & 1).double()

    def compared(indicator: torch.Tensor, learned: list[float] | None) -> dict:
        """Sample frequency under q, the reweighted target mean ± its delta-method error, and
        the model's learned probabilities where it has them."""
        mean = (w.unsqueeze(-1) * indicator).sum(0)
        err = ((w.unsqueeze(-1) ** 2) * (indicator - mean) ** 2).sum(0).sqrt()
        row = {
            "model": indicator.mean(0).tolist(),
            "reweighted": mean.tolist(),
            "reweighted_stderr": err.tolist(),
        }
        if learned is not None:
            row["learned"] = learned
        return row

    mod = getattr(model, "modulation", None)

    out: dict = {
        "n_samples": n,
        "ess": float(1.0 / (w**2).sum() / n),
        "site_sums": (site_sums.numpy(), w.numpy()),
        "mean_abs_site_sum": {
            "model": float(site_sums.abs().mean()),
            "reweighted": float((w.unsqueeze(-1) * site_sums.abs()).sum(0).mean()),
        },
    }
    if nx > 1:
        learned = mod.flip_probs().double().cpu().tolist() if hasattr(mod, "flip_probs") else None
        out["flip_marginals"] = compared(rel_bits, learned)
    if 2 ** (nx - 1) <= MAX_BAR_SUBSETS:
        one_hot = torch.nn.functional.one_hot(s, 2 ** (nx - 1)).double()
        learned = (
            mod.subset_log_probs().exp().double().cpu().tolist()
            if hasattr(mod, "subset_log_probs")
            else None
        )
        out["subset_weights"] = compared(one_hot, learned)
    return out


def site_sum_figure(stats: dict, target: HubbardTarget) -> Figure:
    """Histogram of the site time-sums, flow samples against the reweighted target."""
    sums, w = stats["site_sums"]
    nx = sums.shape[1]
    flat = sums.reshape(-1)
    weights = np.repeat(w[:, None], nx, axis=1).reshape(-1) / nx
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(flat.min(), flat.max(), 81)
    ax.hist(flat, bins=bins, density=True, histtype="step", lw=1.5, label="flow samples")
    ax.hist(
        flat,
        bins=bins,
        weights=weights,
        density=True,
        histtype="step",
        lw=1.5,
        label="reweighted target",
    )
    ax.set_xlabel(r"site time-sum $\sum_t \phi_{t,x}$ (all sites pooled)")
    ax.set_ylabel("density")
    ax.set_title(
        f"Hubbard {target.lattice} {target.nx} sites x {target.nt} slices, "
        f"U = {target.u:g}, beta = {target.beta:g}  (ESS {stats['ess']:.3f})"
    )
    ax.legend()
    return fig


def sector_weights_figure(stats: dict, model: SamplingModel, target: HubbardTarget) -> Figure:
    """Learned sector weights against the reweighted target's (and the exact ones for 2x1).

    ``stats`` from ``reweighted_sector_stats``. Up to MAX_BAR_SUBSETS flip patterns (relative
    to the last site) get one bar group each; beyond that, one group per site j with the
    probability that site j's sign differs from the last site's.
    """
    bars = min(2 ** (target.nx - 1), MAX_BAR_SUBSETS) if target.nx <= 6 else target.nx - 1
    fig = Figure(figsize=(max(6.4, 0.35 * bars + 2), 4), layout="constrained")
    ax = fig.subplots()
    if "subset_weights" in stats:
        sw = stats["subset_weights"]
        k = len(sw["reweighted"])
        labels = [format(i, f"0{target.nx - 1}b")[::-1] for i in range(k)]
        series = [
            ("flow samples", sw["model"], None),
            ("reweighted target", sw["reweighted"], sw["reweighted_stderr"]),
        ]
        if "learned" in sw:
            series.insert(0, ("learned $p_b$", sw["learned"], None))
        exact = target.sector_masses(target.symmetry())
        if exact is not None:  # fold u and its global flip together: p_b(s) = p(u) + p(~u)
            u = torch.arange(exact.numel())
            _, s = split_element(u, target.nx)
            folded = torch.zeros(k, dtype=torch.float64).index_add_(0, s, exact)
            series.append(("exact (quadrature)", folded.tolist(), None))
        xlabel = "flip pattern of sites 0..N_x-2 relative to the last site"
    else:
        fm = stats["flip_marginals"]
        k = len(fm["reweighted"])
        labels = [str(j) for j in range(k)]
        series = [
            ("flow samples", fm["model"], None),
            ("reweighted target", fm["reweighted"], fm["reweighted_stderr"]),
        ]
        if "learned" in fm:
            series.insert(0, ("learned $p_b$", fm["learned"], None))
        xlabel = "site j: probability that its time-sum sign differs from the last site's"
    width = 0.8 / len(series)
    xs = np.arange(k)
    for i, (name, vals, err) in enumerate(series):
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, vals, width, yerr=err, label=name)
    ax.set_xticks(xs, labels, rotation=90 if k > 8 else 0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.12 * max(max(v) for _, v, _ in series))
    ax.set_title(f"sector weights (importance-sampling ESS {stats['ess']:.3f})")
    ax.legend(fontsize="small", loc="upper center", ncols=len(series))
    return fig


_MODEL = {
    "hopping": 1.0,
    "modulation": None,
    "sector_model": "auto",
    "stabilise_every": 8,
    "depth": 2,
    "penalty_strength": 1000.0,
    "penalty_sharpness": 1.0,
}

register_family(HubbardFamily())
register_preset(
    Preset(
        name="hubbard-2x1",
        family="hubbard",
        description="2-site Hubbard, U = 18, beta = 1, N_t = 1: 4 modes, 2 weights (broken Z4)",
        params={
            **_MODEL,
            "lattice": "2site",
            "sites": 2,
            "nt": 1,
            "u": 18.0,
            "beta": 1.0,
            "couplings": 6,
            "hidden": 32,
        },
        steps=1500,
        batch_size=512,
        lr=2e-3,
    )
)
register_preset(
    Preset(
        name="hubbard-4x8",
        family="hubbard",
        description="classroom: 4-site ring, N_t = 8, U = 18, beta = 1 (a minute on a laptop)",
        params={
            **_MODEL,
            "lattice": "ring",
            "sites": 4,
            "nt": 8,
            "u": 18.0,
            "beta": 1.0,
            "couplings": 8,
            "hidden": 64,
        },
        steps=1200,
        batch_size=256,
        lr=1e-3,
        eval_samples=20_000,
    )
)
register_preset(
    Preset(
        name="hubbard-18x100",
        family="hubbard",
        description="18-site honeycomb torus, N_t = 100, U = 18, beta = 1 (GPU-sized)",
        params={
            **_MODEL,
            "lattice": "honeycomb",
            "sites": 18,
            "nt": 100,
            "u": 18.0,
            "beta": 1.0,
            "couplings": 8,
            "hidden": 64,
        },
        steps=800,
        batch_size=128,
        lr=2e-4,
        eval_samples=5_000,
    )
)
