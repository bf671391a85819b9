"""Training by reverse KL with the bijectivity penalty and a REINFORCE term for p_b.

Per sample, f = log q(x) + S(x) (its mean is the free energy, KL - log Z). The loss is

    mean(f + Lambda(y))  +  mean( stopgrad(f - baseline) * log p_b(u) ).

The first term gives the flow its reparametrised gradient. The second is the score-function
(REINFORCE) surrogate for the discrete modulation weights: its gradient w.r.t. b is
(f - baseline) grad log p_b(u), whose expectation plus the direct gradient of log p_b(u) inside
log q equals the exact grad_b E[f]. The leave-one-out baseline keeps it unbiased. The penalty is
left out of the score weight: it depends on y alone, which is independent of u.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from .metrics import ess
from .models import SamplingModel
from .targets.base import Target
from .validation import ConfigError, positive_float, positive_int


def leave_one_out_baseline(f: torch.Tensor) -> torch.Tensor:
    """b_i = mean of f over the other samples of the batch (independent of sample i)."""
    n = f.shape[0]
    if n < 2:
        return torch.zeros_like(f)
    return (f.sum() - f) / (n - 1)


def reinforce_surrogate(f: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """mean(stopgrad(f - baseline) * score): its gradient is the REINFORCE estimate."""
    weight = (f - leave_one_out_baseline(f)).detach()
    return (weight * score).mean()


@dataclass
class TrainConfig:
    """Optimisation settings. ``lr`` for the flow, ``modulation_lr`` for p_b's logits."""

    steps: int = 2000
    batch_size: int = 1024
    lr: float = 2e-3
    modulation_lr: float | None = None  # default: 5 * lr
    grad_clip: float = 10.0
    schedule: str = "cosine"  # or "constant"
    seed: int | None = 0
    log_every: int = 25

    def __post_init__(self):
        self.steps = positive_int("steps", self.steps)
        self.batch_size = positive_int("batch", self.batch_size)
        if self.batch_size < 2:
            raise ConfigError("batch must be >= 2 (the REINFORCE baseline needs two samples)")
        self.lr = positive_float("lr", self.lr)
        if self.modulation_lr is not None:
            self.modulation_lr = positive_float("modulation_lr", self.modulation_lr)
        self.grad_clip = positive_float("grad_clip", self.grad_clip)
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be cosine or constant (got {self.schedule!r})")
        self.log_every = positive_int("log_every", self.log_every)


@dataclass
class History:
    """Per-step record of a training run (lists are aligned with ``step``)."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # free energy E_q[log q + S]
    kl: list[float | None] = field(default_factory=list)  # loss + log Z where known
    ess: list[float] = field(default_factory=list)  # batch ESS
    penalty: list[float] = field(default_factory=list)
    outside: list[float | None] = field(default_factory=list)
    time: list[float] = field(default_factory=list)  # seconds since start
    sector_step: list[int] = field(default_factory=list)
    sector_probs: list[list[float]] = field(default_factory=list)  # learned p_b when logged
    skipped_steps: int = 0
    interrupted: bool = False
    stopped: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _set_seed(seed: int | None) -> None:
    if seed is not None:
        torch.manual_seed(seed)


def _param_groups(model: SamplingModel, cfg: TrainConfig) -> list[dict]:
    mod = getattr(model, "modulation", None)
    mod_params = [p for p in mod.parameters() if p.requires_grad] if mod is not None else []
    ids = {id(p) for p in mod_params}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": rest, "lr": cfg.lr}]
    if mod_params:
        groups.append({"params": mod_params, "lr": cfg.modulation_lr or 5 * cfg.lr})
    return groups


def train(
    model: SamplingModel,
    target: Target,
    config: TrainConfig | None = None,
    *,
    callback: Callable[[int, History, SamplingModel], bool | None] | None = None,
    stop_event: threading.Event | None = None,
    progress: bool = False,
    history: History | None = None,
) -> History:
    """Train ``model`` towards ``target`` by reverse KL; returns the (extended) history.

    * Non-finite loss or gradients: the step is skipped and counted (a warning says so).
    * Gradients are clipped to ``config.grad_clip`` in total norm.
    * ``callback(step, history, model)`` runs every ``log_every`` steps; returning False stops.
    * ``stop_event.set()`` (e.g. from a Stop button) or Ctrl-C stops cleanly after the current
      step; the model keeps its parameters and the history says how it ended.
    """
    cfg = config or TrainConfig()
    hist = history or History()
    _set_seed(cfg.seed)
    params = [p for g in _param_groups(model, cfg) for p in g["params"]]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    opt = torch.optim.Adam(_param_groups(model, cfg))
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=0.0)
    else:
        sched = None
    log_z = target.log_z
    step0 = hist.step[-1] + 1 if hist.step else 0
    t0 = time.perf_counter() - hist.seconds
    bar = None
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415

        bar = tqdm(total=cfg.steps, desc="training", unit="step", leave=True, mininterval=1.0)
    model.train()
    try:
        for i in range(cfg.steps):
            if stop_event is not None and stop_event.is_set():
                hist.stopped = True
                break
            draw = model.draw(cfg.batch_size)
            action = target.action(draw.x)
            f = draw.log_q + action
            loss = (f + draw.penalty).mean()
            if draw.score is not None:
                loss = loss + reinforce_surrogate(f, draw.score)
            opt.zero_grad(set_to_none=True)
            finite = bool(torch.isfinite(loss))
            if finite:
                loss.backward()
                grads = [p.grad for p in params if p.grad is not None]
                finite = all(bool(torch.isfinite(g).all()) for g in grads)
            if finite:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
            else:
                hist.skipped_steps += 1
                if hist.skipped_steps in (1, 10, 100, 1000):
                    warnings.warn(
                        f"step {step0 + i}: non-finite loss or gradient, step skipped "
                        f"({hist.skipped_steps} so far)",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            if sched is not None:
                sched.step()
            with torch.no_grad():
                fe = float(f.detach().double().mean())
                hist.step.append(step0 + i)
                hist.loss.append(fe)
                hist.kl.append(fe + log_z if log_z is not None else None)
                hist.ess.append(ess(-f.detach()))
                hist.penalty.append(float(draw.penalty.detach().double().mean()))
                hist.outside.append(
                    float(draw.outside.double().mean()) if draw.outside is not None else None
                )
                hist.time.append(time.perf_counter() - t0)
            last = i == cfg.steps - 1
            if (i + 1) % cfg.log_every == 0 or last:
                learned = model.learned_sector_probs()
                if learned is not None and learned.numel() <= 4096:
                    hist.sector_step.append(step0 + i)
                    hist.sector_probs.append(learned.double().cpu().tolist())
                if bar is not None:
                    bar.update(cfg.log_every if not last else cfg.steps - bar.n)
                    bar.set_postfix(loss=f"{fe:.4f}", ess=f"{hist.ess[-1]:.3f}")
                if callback is not None and callback(step0 + i, hist, model) is False:
                    hist.stopped = True
                    break
    except KeyboardInterrupt:
        hist.interrupted = True
        warnings.warn(
            "training interrupted; the model keeps its current parameters",
            RuntimeWarning,
            stacklevel=2,
        )
    finally:
        if bar is not None:
            bar.close()
        hist.seconds = time.perf_counter() - t0
        model.eval()
    return hist


def finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None
