"""Compare SESaMo with the baselines on one preset, over several seeds (``sesamo-lab compare``).

Every model kind is built from the preset's ``ModelSpec`` (the same backbone flow factory) and
trained by ``runner.prepare_run`` / ``runner.execute`` with the same steps, batch size, learning
rate and evaluation budget; only the seed varies (0 .. K-1). Results are reported as
mean ± standard error over seeds (standard error = sample standard deviation / sqrt(K)).

Outputs in the chosen folder: ``compare.md`` (the tables), ``compare.csv`` (one row per model,
means and standard errors), ``runs.csv`` (one row per model and seed) and ``compare.png`` (one
density panel per method for 2-D targets, one histogram of the magnetisation per site otherwise).

Equal-mass limit. A model whose sector masses are forced to 1/K (canonicalization) can at best
fit the target perfectly inside every sector: q(x) = p(x) / (K p_u(x)), with p_u the target's
sector masses. The importance weight is then w = p / q = K p_u on sector u, so with E_q[w] = 1

    ESS = 1 / E_q[w^2] = 1 / (sum_u (1/K) (K p_u)^2) = 1 / (K sum_u p_u^2),
    KL(q || p) = sum_u (1/K) log(1 / (K p_u)) = -log K - (1/K) sum_u log p_u.

Any other equal-mass model has within-sector mismatch on top (E_{q_u}[(p_u-normalised p / q_u)^2]
>= 1 by Cauchy-Schwarz, and the within-sector KL is >= 0), so these are an upper bound on its ESS
and a lower bound on its KL. For an exact symmetry (p_u = 1/K) they are 1 and 0.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from .model_kinds import MODEL_KINDS
from .models import SamplingModel
from .plots import density_grid, density_panel, sample_density, save_figure
from .presets import get_family, get_preset
from .runner import Run, check_writable, execute, prepare_run
from .symmetry import BlockFlips, DiscreteSymmetry, PlaneRotations
from .targets.base import Target
from .validation import ConfigError, positive_int

DEFAULT_MODELS = "sesamo,realnvp,canonical,vmonf"
MAX_SECTORS_SHOWN = 16  # sector-mass table and CSV columns only for groups this small

# (key, column title, "higher is better"); KL falls back to the free energy without log Z.
METRICS = (
    ("ess", "ESS", True),
    ("kl", "KL", False),
    ("nll", "NLL", False),
    ("forward_ess", "forward ESS", True),
    ("target_mass_unreached", "p-mass with q = 0", False),
    ("outside_domain_fraction", "outside Ω", False),
    ("density_integral", "∫q (self-check)", None),
    ("train_seconds", "train time [s]", False),
)


def parse_models(text: str) -> list[str]:
    """Comma-separated model kinds, checked against the registered ones (order kept)."""
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    if not names:
        raise ConfigError(f"models must list at least one of: {', '.join(MODEL_KINDS)}")
    for name in names:
        if name not in MODEL_KINDS:
            raise ConfigError(
                f"unknown model {name!r} in --models; allowed: {', '.join(MODEL_KINDS)}"
            )
    return list(dict.fromkeys(names))


def equal_mass_limit(masses) -> dict:
    """Best ESS and KL of any model with sector masses 1/K, for target masses p_u (see above)."""
    p = np.asarray(masses, dtype=float)
    p = p / p.sum()
    k = p.size
    with np.errstate(divide="ignore"):
        kl = float(-math.log(k) - np.log(p).mean())
    return {"ess": float(1.0 / (k * np.sum(p**2))), "kl": kl}


def mean_stderr(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and standard error of the finite-or-infinite values (None entries ignored)."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if vals.size == 0:
        return None, None
    mean = float(vals.mean())
    if vals.size < 2 or not np.isfinite(vals).all():
        return mean, None
    return mean, float(vals.std(ddof=1) / math.sqrt(vals.size))


@dataclass
class ModelResult:
    """All seeds of one model kind; ``model`` is the seed-0 model (for the figure)."""

    kind: str
    runs: list[dict] = field(default_factory=list)
    model: SamplingModel | None = None

    def values(self, key: str) -> list[float | None]:
        return [r.get(key) for r in self.runs]

    def summary(self, key: str) -> tuple[float | None, float | None]:
        """Mean and standard error over seeds.

        For the density integral, which should be 1 (less the mass outside Omega) for every
        seed, the error is the Monte Carlo error of the mean, sqrt(sum_i se_i^2) / n.
        """
        mean, err = mean_stderr(self.values(key))
        if key == "density_integral" and mean is not None:
            se = [r["density_integral_stderr"] for r in self.runs]
            err = math.sqrt(sum(e * e for e in se)) / len(se)
        return mean, err

    def worst_self_consistency(self) -> float | None:
        """Largest |int q - (1 - outside fraction)| / (its standard error) over the seeds.

        None when the estimate carries no information: in many dimensions the broad Gaussian
        reference r essentially never lands where q lives, so E_r[q/r] comes out ~0 with a
        vanishing standard error (seen on 8x8 lattices).
        """
        worst = 0.0
        for r in self.runs:
            mean, err = r["density_integral"], r["density_integral_stderr"]
            if not err > 0 or mean < 0.01:
                return None
            expected = 1.0 - (r["outside_domain_fraction"] or 0.0)
            worst = max(worst, abs(mean - expected) / err)
        return worst


@dataclass
class Comparison:
    preset: str
    models: list[str]
    seeds: int
    steps: int
    batch_size: int
    lr: float
    eval_samples: int
    threads: int
    target: Target
    sector_names: list[str] | None
    target_masses: list[float] | None
    results: dict[str, ModelResult]
    kl_is_free_energy: bool
    broken: bool
    limit: dict | None
    grid_cells: int | None = None

    def command(self) -> str:
        return (
            f"sesamo-lab compare {self.preset} --models {','.join(self.models)} "
            f"--seeds {self.seeds} --steps {self.steps}"
        )


def comparison_symmetry(run: Run) -> DiscreteSymmetry | None:
    """The group of the preset's model spec (what SESaMo and canonicalization use)."""
    family = get_family(run.preset.family)
    try:
        sym = family.model_spec(run.target, run.params).symmetry
    except NotImplementedError:
        sym = None
    sym = sym if isinstance(sym, DiscreteSymmetry) else run.target.symmetry()
    return sym if isinstance(sym, DiscreteSymmetry) else None


@torch.no_grad()
def sector_masses_of(model: SamplingModel, symmetry: DiscreteSymmetry, n: int) -> list[float]:
    """Fraction of n model samples in each sector of ``symmetry``."""
    counts = torch.zeros(symmetry.num_elements, dtype=torch.float64)
    left = n
    while left > 0:
        m = min(left, 10_000)
        u = symmetry.sector(model.sample(m)).cpu()
        counts += torch.bincount(u, minlength=symmetry.num_elements).double()
        left -= m
    return (counts / n).tolist()


@torch.no_grad()
def unreached_target_mass(model: SamplingModel, target: Target, n: int) -> float | None:
    """Fraction of exact target samples where the model density is exactly zero (log q = -inf).

    Non-zero for canonicalization when the flow does not fill the whole domain: those target
    points have no preimage, so the NLL is infinite and the forward ESS is zero.
    """
    if not target.can_sample:
        return None
    x = target.sample(n).to(dtype=model.dtype, device=model.device)
    lq = torch.cat([model.log_prob(c) for c in x.split(10_000)])
    return float((lq == -math.inf).double().mean())


def run_comparison(
    preset: str,
    models: list[str] | str = DEFAULT_MODELS,
    seeds: int = 3,
    *,
    steps: int | None = None,
    eval_samples: int | None = None,
    dtype: str = "float32",
    log: Callable[[str], None] | None = print,
) -> Comparison:
    """Train every model with seeds 0 .. seeds-1 and collect their metrics.

    Every model is built once before any training, so a model that does not apply to the
    preset's family fails with a ConfigError before anything runs.
    """
    kinds = parse_models(models) if isinstance(models, str) else parse_models(",".join(models))
    seeds = positive_int("seeds", seeds)
    first = {
        kind: prepare_run(preset, kind, steps=steps, seed=0, eval_samples=eval_samples, dtype=dtype)
        for kind in kinds
    }
    run0 = first[kinds[0]]
    symmetry = comparison_symmetry(run0)
    exact = run0.target.sector_masses(symmetry) if symmetry is not None else None
    target_masses = exact.tolist() if exact is not None else None
    spec_broken = _is_broken(run0)
    limit = equal_mass_limit(target_masses) if target_masses is not None else None
    results = {kind: ModelResult(kind) for kind in kinds}
    target0 = run0.target
    grid = GridReference.build(target0) if not target0.can_sample else None
    for seed in range(seeds):
        for kind in kinds:
            run = first[kind] if seed == 0 else None
            if run is None:
                run = prepare_run(
                    preset, kind, steps=steps, seed=seed, eval_samples=eval_samples, dtype=dtype
                )
            t0 = time.perf_counter()
            metrics = execute(run, None)
            row = _flatten(metrics, run, symmetry, grid)
            results[kind].runs.append(row)
            if seed == 0:
                results[kind].model = run.model
            if log is not None:
                kl_name = "KL" if run.target.log_z is not None else "F"
                log(
                    f"[compare] {preset} {kind:<10} seed {seed}: ESS {row['ess']:.4f}  "
                    f"{kl_name} {row['kl']:.4f}  ({time.perf_counter() - t0:.1f} s)"
                )
    sector_names = (
        symmetry.element_names()
        if symmetry is not None and symmetry.num_elements <= MAX_SECTORS_SHOWN
        else None
    )
    return Comparison(
        preset=preset,
        models=kinds,
        seeds=seeds,
        steps=run0.train_config.steps,
        batch_size=run0.train_config.batch_size,
        lr=run0.train_config.lr,
        eval_samples=run0.eval_samples,
        threads=torch.get_num_threads(),
        target=run0.target,
        sector_names=sector_names,
        target_masses=target_masses,
        results=results,
        kl_is_free_energy=run0.target.log_z is None,
        broken=spec_broken,
        limit=limit,
        grid_cells=grid.cells if grid is not None else None,
    )


def _is_broken(run: Run) -> bool:
    family = get_family(run.preset.family)
    try:
        return bool(family.model_spec(run.target, run.params).broken)
    except NotImplementedError:
        return False


@dataclass
class GridReference:
    """The exact target on a fine 2-D grid, for forward metrics when there is no sampler.

    Cell c (centre x_c, area A) gets probability P_c = p(x_c) A, normalised on the grid (the
    grid is widened until its border cells carry negligible mass). Then, as the large-N limit
    of the sample estimators in ``metrics`` (midpoint-rule quadrature):

        NLL = -sum_c P_c log q(x_c),
        forward ESS = 1 / E_p[w] = 1 / sum_c P_c p(x_c) / q(x_c),   w = p / q,
        p-mass with q = 0 = sum_c P_c [q(x_c) = 0].

    The forward ESS of ``metrics.forward_ess``, 1 / (E_p[w] E_p[1/w]), has E_p[1/w] = int q = 1
    for a normalised model and a target that is positive everywhere; on the grid that factor
    would only measure how much of q lies on the kept cells, so it is set to 1.
    Cells with P_c below 1e-14 are left out (p is negligible there).
    """

    points: torch.Tensor  # (cells, *event_shape), float64
    log_p_cell: torch.Tensor  # log P_c
    log_density: torch.Tensor  # log p(x_c), normalised on the grid
    cells: int

    @classmethod
    @torch.no_grad()
    def build(cls, target: Target, bins: int = 600) -> GridReference | None:
        if math.prod(target.event_shape) != 2:
            return None
        dtype = target._anchor.dtype
        extent = 3.0 * target.reference_scale()
        for _ in range(6):
            edges = torch.linspace(-extent, extent, bins + 1, dtype=torch.float64)
            centres = 0.5 * (edges[1:] + edges[:-1])
            gx, gy = torch.meshgrid(centres, centres, indexing="xy")
            pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
            shaped = pts.reshape(-1, *target.event_shape)
            log_p = torch.cat([-target.action(c.to(dtype)).double() for c in shaped.split(50_000)])
            area = float((edges[1] - edges[0]) ** 2)
            log_cell = log_p + math.log(area)
            log_cell = log_cell - torch.logsumexp(log_cell, 0)
            border = (pts.abs().amax(-1) > extent - 2 * (edges[1] - edges[0])).reshape(-1)
            if float(torch.logsumexp(log_cell[border], 0)) < math.log(1e-10):
                keep = log_cell > math.log(1e-14)
                return cls(
                    shaped[keep], log_cell[keep], log_cell[keep] - math.log(area), bins * bins
                )
            extent *= 1.5
        return None

    @torch.no_grad()
    def forward_metrics(self, model: SamplingModel) -> dict:
        pts = self.points.to(dtype=model.dtype, device=model.device)
        lq = torch.cat([model.log_prob(c).double().cpu() for c in pts.split(20_000)])
        prob = self.log_p_cell.exp()
        zero = lq == -math.inf
        nll = math.inf if bool(zero.any()) else float(-(prob * lq).sum())
        log_w = self.log_density - lq
        lse_w = torch.logsumexp(self.log_p_cell + log_w, 0)
        return {
            "nll": nll,
            "forward_ess": float(torch.exp(-lse_w)),
            "target_mass_unreached": float(prob[zero].sum()),
        }


def _flatten(
    metrics: dict,
    run: Run,
    symmetry: DiscreteSymmetry | None,
    grid: GridReference | None = None,
) -> dict:
    """One table row: the scalar metrics, the sector masses and the unreached target mass."""
    row = {
        "seed": metrics["seed"],
        "ess": metrics["ess"],
        "kl": metrics["kl"] if metrics["kl"] is not None else metrics["free_energy"],
        "nll": metrics["nll"],
        "forward_ess": metrics["forward_ess"],
        "outside_domain_fraction": metrics["outside_domain_fraction"],
        "density_integral": metrics["density_integral"]["mean"],
        "density_integral_stderr": metrics["density_integral"]["stderr"],
        "train_seconds": metrics["train_seconds"],
        "target_mass_unreached": unreached_target_mass(run.model, run.target, run.eval_samples),
    }
    if grid is not None and row["nll"] is None:
        row.update(grid.forward_metrics(run.model))
    if symmetry is not None and symmetry.num_elements <= MAX_SECTORS_SHOWN:
        row["sectors"] = sector_masses_of(run.model, symmetry, run.eval_samples)
    return row


# ---- formatting ------------------------------------------------------------------------------


def _fmt(mean: float | None, err: float | None, digits: int = 4) -> str:
    if mean is None:
        return "–"
    if not math.isfinite(mean):
        return "inf" if mean > 0 else "-inf"
    text = f"{mean:.{digits}f}" if abs(mean) >= 10 ** (-digits) or mean == 0 else f"{mean:.2e}"
    if err is None:
        return text
    if err == 0:
        return f"{text} ± 0"
    return f"{text} ± {err:.{digits}f}" if err >= 10 ** (-digits) else f"{text} ± {err:.1e}"


def _sigma(dev: float | None) -> str:
    if dev is None:
        return "not measurable (the Gaussian reference does not overlap q)"
    return f"{dev:.1f}σ"


def beats(comp: Comparison, key: str, higher_better: bool, winner: str, loser: str) -> bool | None:
    """True when ``winner``'s mean is better than ``loser``'s and the ±1 s.e. bars do not touch."""
    if winner not in comp.results or loser not in comp.results:
        return None
    mw, ew = comp.results[winner].summary(key)
    ml, el = comp.results[loser].summary(key)
    if mw is None or ml is None:
        return None
    ew, el = ew or 0.0, el or 0.0
    if not (math.isfinite(mw) or math.isfinite(ml)):
        return None
    if higher_better:
        return mw - ew > ml + el
    return mw + ew < ml - el


def markdown(comp: Comparison) -> str:
    """The comparison as Markdown: main table, sector masses, equal-mass limit, verdicts."""
    kl_title = "F = E[log q + S]" if comp.kl_is_free_energy else "KL"
    lines = [
        f"### {comp.preset}: {', '.join(comp.models)} ({comp.seeds} seeds)",
        "",
        f"`{comp.command()}` — batch {comp.batch_size}, lr {comp.lr:g}, "
        f"{comp.eval_samples} evaluation samples, {comp.threads} torch thread(s); "
        "mean ± standard error over seeds (∫q: ± its Monte Carlo error).",
        "",
    ]
    titles = [kl_title if k == "kl" else t for k, t, _ in METRICS]
    lines.append("| model | " + " | ".join(titles) + " |")
    lines.append("|---" * (len(METRICS) + 1) + "|")
    for kind, res in comp.results.items():
        cells = []
        for key, _, _ in METRICS:
            digits = 1 if key == "train_seconds" else 4
            cells.append(_fmt(*res.summary(key), digits=digits))
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    if comp.grid_cells is not None:
        lines += [
            "",
            "No exact sampler for this target: NLL, forward ESS and the p-mass with q = 0 are "
            f"midpoint quadrature on a {math.isqrt(comp.grid_cells)}² grid "
            "(compare.GridReference).",
        ]
    if comp.limit is not None and comp.broken:
        lines += [
            "",
            f"Equal-mass limit (any model forced to sector masses 1/{len(comp.target_masses)}, "
            f"e.g. canonicalization; ESS = 1/(K Σ p_u²)): **ESS ≤ {comp.limit['ess']:.4f}**, "
            f"**KL ≥ {comp.limit['kl']:.4f}**.",
        ]
    if comp.sector_names is not None and any("sectors" in r.runs[0] for r in comp.results.values()):
        lines += ["", "Sector masses of q (sample frequencies) against the exact target:", ""]
        lines.append("| sector | target | " + " | ".join(comp.results) + " |")
        lines.append("|---" * (len(comp.results) + 2) + "|")
        for u, name in enumerate(comp.sector_names):
            tgt = f"{comp.target_masses[u]:.4f}" if comp.target_masses is not None else "–"
            cells = [
                _fmt(*mean_stderr([r["sectors"][u] for r in res.runs]), digits=4)
                for res in comp.results.values()
            ]
            lines.append(f"| {name} | {tgt} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Density self-consistency (int q = E_r[q/r] against 1 − outside fraction, each run's "
        "own Monte Carlo error): largest deviation "
        + ", ".join(
            f"{kind} {_sigma(res.worst_self_consistency())}" for kind, res in comp.results.items()
        )
        + ".",
    ]
    if "sesamo" in comp.results and len(comp.results) > 1:
        lines += ["", "SESaMo better beyond the ±1 s.e. bars:", ""]
        for kind in comp.results:
            if kind == "sesamo":
                continue
            verdict = []
            for key, title, hb in (("ess", "ESS", True), ("kl", kl_title, False)):
                b = beats(comp, key, hb, "sesamo", kind)
                verdict.append(f"{title} {'yes' if b else 'no' if b is not None else '–'}")
            lines.append(f"- vs {kind}: " + ", ".join(verdict))
    return "\n".join(lines) + "\n"


def write_csv(comp: Comparison, path: Path) -> None:
    """One row per model (mean and standard error per metric, sector masses), plus the limit."""
    keys = [k for k, _, _ in METRICS]
    n_sec = len(comp.sector_names) if comp.sector_names is not None else 0
    header = ["preset", "model", "seeds", "steps"]
    for k in keys:
        header += [f"{k}_mean", f"{k}_stderr"]
    header += [f"sector{u}_{s}" for u in range(n_sec) for s in ("mean", "stderr")]
    header += [f"sector{u}_target" for u in range(n_sec)]
    rows = []
    for kind, res in comp.results.items():
        row = [comp.preset, kind, comp.seeds, comp.steps]
        for k in keys:
            row += list(res.summary(k))
        for u in range(n_sec):
            row += list(mean_stderr([r.get("sectors", [None] * n_sec)[u] for r in res.runs]))
        row += comp.target_masses[:n_sec] if comp.target_masses is not None else [None] * n_sec
        rows.append(row)
    if comp.limit is not None and comp.broken:
        row = [comp.preset, "equal-mass-limit", "", ""]
        for k in keys:
            row += [comp.limit.get(k), None]
        row += [1 / n_sec, None] * n_sec if n_sec else []
        row += comp.target_masses[:n_sec] if n_sec else []
        rows.append(row)
    _write_rows(path, header, rows)


def write_runs_csv(comp: Comparison, path: Path) -> None:
    """Every model and seed, unaggregated."""
    keys = [k for k, _, _ in METRICS] + ["density_integral_stderr"]
    rows = [
        [comp.preset, kind, r["seed"]] + [r.get(k) for k in keys]
        for kind, res in comp.results.items()
        for r in res.runs
    ]
    _write_rows(path, ["preset", "model", "seed", *keys], rows)


def _write_rows(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow(["" if v is None else v for v in row])


# ---- figure ----------------------------------------------------------------------------------


@torch.no_grad()
def comparison_figure(comp: Comparison, n: int = 100_000) -> Figure:
    """One panel per method (seed-0 model): 2-D density, or a histogram of M / V."""
    target = comp.target
    dim = math.prod(target.event_shape)
    samples = {
        kind: res.model.sample(n).detach().double().cpu().reshape(n, -1)
        for kind, res in comp.results.items()
        if res.model is not None
    }
    if dim == 2:
        return _density_panels(comp, samples)
    return _histogram_panels(comp, samples)


def _boundary_angles(symmetry) -> list[float]:
    if isinstance(symmetry, PlaneRotations) and symmetry.order > 1:
        return [math.pi * (2 * k + 1) / symmetry.order for k in range(symmetry.order)]
    if isinstance(symmetry, BlockFlips) and symmetry.num_blocks == 2:
        return [0.0, math.pi / 2, math.pi, 3 * math.pi / 2]
    return []


def _density_panels(comp: Comparison, samples: dict[str, torch.Tensor]) -> Figure:
    target = comp.target
    if target.can_sample:
        ref = target.sample(50_000).double().cpu().reshape(-1, 2)
    else:
        ref = torch.cat(list(samples.values()))
    extent = 1.15 * float(torch.quantile(ref.abs().amax(-1), 0.999))

    def log_p(pts: torch.Tensor) -> torch.Tensor:
        x = pts.to(dtype=target._anchor.dtype).reshape(-1, *target.event_shape)
        return -target.action(x).double()

    edges, dens = density_grid(log_p, extent, 120)
    dens = dens / (dens.sum() * (edges[1] - edges[0]) ** 2)  # normalised on the grid
    vmax = float(dens.max())
    panels = [(kind, sample_density(x.numpy(), edges)) for kind, x in samples.items()]
    panels.append(("exact target", dens))
    fig = Figure(figsize=(3.2 * len(panels) + 1, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharex=True, sharey=True))
    rays = _boundary_angles(target.symmetry())
    for ax, (title, data) in zip(axes, panels, strict=True):
        res = comp.results.get(title)
        ess = res.runs[0]["ess"] if res is not None and res.runs else None
        label = title if ess is None else f"{title} (seed 0: ESS {ess:.3f})"
        im = density_panel(ax, data, extent, vmax, rays, label)
    fig.colorbar(im, ax=list(axes), shrink=0.85, label="density")
    fig.suptitle(f"{comp.preset}: samples of each method (seed 0) and the exact target")
    return fig


def _histogram_quantity(target, shaped: torch.Tensor) -> torch.Tensor:
    """M/V of a real field, arg M in degrees of a complex one (the quantity its symmetry moves)."""
    if getattr(target, "complex_field", False):
        parts = shaped.reshape(shaped.shape[0], 2, -1).sum(-1)
        return torch.rad2deg(torch.remainder(torch.atan2(parts[:, 1], parts[:, 0]), 2 * math.pi))
    return shaped.reshape(shaped.shape[0], -1).mean(-1)


def _histogram_panels(comp: Comparison, samples: dict[str, torch.Tensor]) -> Figure:
    target = comp.target
    complex_field = getattr(target, "complex_field", False)
    panels = list(samples.items())
    fig = Figure(figsize=(3.4 * len(panels) + 0.5, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharex=True, sharey=True))
    shaped_all = {k: x.reshape(-1, *target.event_shape) for k, x in panels}
    values = {k: _histogram_quantity(target, x) for k, x in shaped_all.items()}
    if complex_field:
        bins = np.linspace(0.0, 360.0, 73)
    else:
        lim = float(torch.cat(list(values.values())).abs().max()) * 1.05 + 1e-9
        bins = np.linspace(-lim, lim, 81)
    for ax, (kind, _) in zip(axes, panels, strict=True):
        model = comp.results[kind].model
        shaped = shaped_all[kind]
        m = values[kind].numpy()
        lq = torch.cat([model.log_prob(c.to(model.dtype)).double() for c in shaped.split(5000)])
        act = torch.cat([target.action(c.to(model.dtype)).double() for c in shaped.split(5000)])
        lw = -act - lq
        lw = torch.where(torch.isfinite(lw), lw, torch.full_like(lw, -math.inf))
        w = torch.softmax(lw, 0).numpy()
        ax.hist(m, bins=bins, density=True, histtype="step", lw=1.4, label="q samples")
        ax.hist(m, bins=bins, weights=w, density=True, histtype="step", lw=1.4, label="reweighted")
        ax.set_title(kind)
        ax.set_xlabel("arg M (degrees)" if complex_field else "M / V")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize="small")
    what = "angle of the magnetisation" if complex_field else "magnetisation per site"
    fig.suptitle(f"{comp.preset}: {what} of each method (seed 0)")
    return fig


def write_outputs(comp: Comparison, out_dir: Path) -> dict[str, Path]:
    """compare.md, compare.csv, runs.csv and compare.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "compare.md",
        "csv": out_dir / "compare.csv",
        "runs": out_dir / "runs.csv",
        "figure": out_dir / "compare.png",
    }
    paths["markdown"].write_text(markdown(comp))
    write_csv(comp, paths["csv"])
    write_runs_csv(comp, paths["runs"])
    n_fig = min(100_000, max(5_000, 10 * comp.eval_samples))
    save_figure(comparison_figure(comp, n_fig), paths["figure"])
    return paths


# ---- command line ----------------------------------------------------------------------------


def add_compare_parser(sub) -> None:
    """The ``compare`` subcommand (registered through ``cli.EXTRA_COMMANDS``)."""
    p = sub.add_parser(
        "compare",
        help="train SESaMo and the baselines over seeds and tabulate ESS, KL, NLL, sectors",
        description="Train each model with seeds 0..K-1 on the same backbone and budget; "
        "write compare.md, compare.csv, runs.csv and compare.png.",
    )
    p.add_argument("preset", help="preset name (see `sesamo-lab presets`)")
    p.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help=f"comma-separated model kinds (default {DEFAULT_MODELS})",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds K >= 1 (default 3)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: preset's)")
    p.add_argument(
        "--eval-samples", type=int, default=None, help="samples for the final metrics (>= 100)"
    )
    p.add_argument("--dtype", default="float32", help="float32 or float64")
    p.add_argument("--out", default=None, help="output folder (default runs/compare-PRESET)")
    p.set_defaults(handler=_cmd_compare)


def _cmd_compare(args) -> int:
    models = parse_models(args.models)
    seeds = positive_int("seeds", args.seeds)
    if args.eval_samples is not None and args.eval_samples < 100:
        raise ConfigError(f"eval-samples must be >= 100 (got {args.eval_samples})")
    get_preset(args.preset)
    out = Path(args.out) if args.out else Path("runs") / f"compare-{args.preset}"
    check_writable(out)
    comp = run_comparison(
        args.preset,
        models,
        seeds,
        steps=args.steps,
        eval_samples=args.eval_samples,
        dtype=args.dtype,
    )
    paths = write_outputs(comp, out)
    print()
    print(paths["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
