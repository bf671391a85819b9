"""A classroom dashboard (ipywidgets): pick a target and a model, press Train, watch it learn.

    from sesamo_lab.dashboard import Dashboard
    Dashboard().show()          # or just put ``Dashboard()`` last in a cell

Training runs in a background thread through ``training.train`` with its ``callback`` and
``stop_event``, so the kernel stays responsive: the Stop button, other cells and the widgets keep
working while the model trains. The callback redraws the live pictures at most every
``update_interval`` seconds (the first one as soon as the first logged step is done), because
rendering costs time that training would otherwise get.

Rules the dashboard keeps (they are what a teacher relies on in front of a class):

* changing a control never starts training; only the Train button does;
* a value outside its range is refused with a visible one-line message (a
  ``validation.ConfigError``), and nothing starts;
* an error during training is shown in the dashboard, the thread ends cleanly, the kernel lives
  on, and the last model stays available as ``dashboard.model``.
"""

from __future__ import annotations

import html
import threading
import time
import traceback
from dataclasses import dataclass

import ipywidgets as W
import torch

from . import training as _training
from .live_views import LiveView, curves_png, placeholder_png, view_for
from .model_kinds import MODEL_KINDS
from .models import SamplingModel
from .presets import get_family, get_preset, list_presets
from .runner import prepare_run
from .targets.base import Target
from .training import History, TrainConfig
from .validation import ConfigError, float_in_range, positive_float, positive_int

# Limits of the text boxes: generous for a classroom, small enough to keep a laptop responsive.
MAX_STEPS = 100_000
MAX_BATCH = 8192
MAX_LR = 0.1
BREAKING_RANGE = (-0.5, 0.5)
PREFERRED_FIRST = ("gmm-z8-broken", "gmm-z8")


def _warm_up() -> None:
    """Pay the one-off costs of the first training step and picture ahead of time.

    torch's first optimizer step imports a large stack (several seconds on a laptop) and
    matplotlib's first figure loads fonts and parses mathtext; done in a background thread when
    the dashboard is created, they no longer delay the first live picture after Train.
    """
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p])
    p.sum().backward()
    opt.step()
    curves_png(History(step=[0, 1], loss=[1.0, 0.5], kl=[1.0, 0.5], ess=[0.1, 0.2]), True)


_warm = threading.Thread(target=_warm_up, daemon=True, name="sesamo-dashboard-warm-up")


@dataclass(frozen=True)
class Settings:
    """Everything one Train press needs, validated."""

    preset: str
    model: str
    overrides: dict
    steps: int
    batch: int
    lr: float
    seed: int


def _toggle_mode(preset) -> str | None:
    """What the exact/broken toggle changes for this preset.

    "breaking": the target's field h (0 for exact; the modulation follows: fixed equal weights
    for h = 0, learned p_b otherwise). "modulation": targets without an h whose symmetry is
    broken by nature (Hubbard site flips): fixed equal or learned p_b. None: nothing to toggle.
    """
    if "breaking" in preset.params:
        return "breaking"
    if "modulation" in preset.params:
        return "modulation"
    return None


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _group_label(order: int) -> str:
    return "none" if order == 1 else f"Z{order}"


class Dashboard:
    """The widget; ``show()`` displays it, ``ui`` is the top-level ipywidgets box.

    ``update_interval`` (s) throttles the live redraws; ``samples`` is the number of model samples
    in each live picture. After a run, ``model``, ``target`` and ``history`` hold its results.
    """

    def __init__(
        self,
        preset: str = "gmm-z8-broken",
        *,
        update_interval: float = 1.0,
        samples: int = 4000,
        log_every: int = 5,
    ):
        if not _warm.is_alive() and _warm.ident is None:
            _warm.start()
        self.update_interval = positive_float("update_interval", update_interval)
        self.samples = positive_int("samples", samples)
        self.log_every = positive_int("log_every", log_every)
        self.model: SamplingModel | None = None
        self.target: Target | None = None
        self.history: History | None = None
        self.error: BaseException | None = None
        self.settings: Settings | None = None
        self.density_updates = 0  # live pictures drawn during the current/last run
        self.first_update_latency: float | None = None  # s from Train to the first live picture
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._view: LiveView | None = None
        self._view_key: tuple | None = None
        self._pressed_at = 0.0
        self._last_draw = 0.0

        names = [p.name for p in list_presets()]
        names.sort(
            key=lambda n: (
                n not in PREFERRED_FIRST,
                PREFERRED_FIRST.index(n) if n in PREFERRED_FIRST else 0,
            )
        )
        if preset not in names:
            raise ConfigError(f"unknown preset {preset!r}; allowed: {', '.join(names)}")
        style = {"description_width": "95px"}
        wide = W.Layout(width="290px")
        self.w_target = W.Dropdown(
            options=names, value=preset, description="target", style=style, layout=wide
        )
        self.w_model = W.Dropdown(description="model", style=style, layout=wide)
        self.w_group = W.Dropdown(description="group", style=style, layout=wide)
        self.w_symmetry = W.ToggleButtons(
            options=["exact", "broken"],
            description="symmetry",
            style={**style, "button_width": "88px"},
            tooltips=[
                "h = 0 and fixed equal sector weights (Hubbard: fixed equal weights)",
                "h from the slider and learned p_b (Hubbard: learned p_b)",
            ],
        )
        self.w_breaking = W.FloatSlider(
            value=0.05,
            min=BREAKING_RANGE[0],
            max=BREAKING_RANGE[1],
            step=0.001,
            description="breaking h",
            style=style,
            layout=wide,
            continuous_update=False,
            readout_format=".3f",
        )
        self.w_steps = W.IntText(description="steps", style=style, layout=wide)
        self.w_batch = W.IntText(description="batch", style=style, layout=wide)
        self.w_lr = W.FloatText(description="learning rate", style=style, layout=wide, step=1e-3)
        self.w_seed = W.IntText(value=0, description="seed", style=style, layout=wide)
        self.w_train = W.Button(
            description="Train", button_style="success", icon="play", layout=W.Layout(width="140px")
        )
        self.w_stop = W.Button(
            description="Stop",
            button_style="danger",
            icon="stop",
            disabled=True,
            layout=W.Layout(width="140px"),
        )
        self.w_progress = W.IntProgress(
            value=0, min=0, max=1, description="progress", style=style, layout=wide
        )
        self.w_message = W.HTML(layout=W.Layout(width="290px", min_height="40px"))
        self.w_metrics = W.HTML(layout=W.Layout(width="290px"))
        self.w_density = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.w_curves = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.w_density.add_class("sesamo-density")
        self.w_curves.add_class("sesamo-curves")
        self.w_message.add_class("sesamo-message")

        self.w_train.on_click(self._on_train)
        self.w_stop.on_click(self._on_stop)
        self.w_target.observe(self._on_target, names="value")
        settings = (
            self.w_model,
            self.w_group,
            self.w_symmetry,
            self.w_breaking,
            self.w_steps,
            self.w_batch,
            self.w_lr,
            self.w_seed,
        )
        for w in settings:
            w.observe(self._on_setting, names="value")
        self._apply_preset(preset)

        controls = W.VBox(
            [
                W.HTML("<b>SESaMo live</b>"),
                self.w_target,
                *settings,
                W.HBox([self.w_train, self.w_stop]),
                self.w_progress,
                self.w_message,
                self.w_metrics,
            ],
            layout=W.Layout(width="310px", flex="0 0 310px"),
        )
        plots = W.VBox([self.w_density, self.w_curves], layout=W.Layout(flex="1 1 auto"))
        self.ui = W.HBox([controls, plots])
        self.ui.add_class("sesamo-dashboard")
        self.w_density.value = placeholder_png("press Train to start", (9.3, 3.1))
        self.w_curves.value = placeholder_png("training curves appear here", (9.0, 2.6))

    # --- display ---------------------------------------------------------------------------------
    def show(self) -> Dashboard:
        from IPython.display import display  # noqa: PLC0415

        display(self.ui)
        return self

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training thread ends (for scripts and tests); True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    # --- controls --------------------------------------------------------------------------------
    def _apply_preset(self, name: str) -> None:
        """Fill the controls with a preset's defaults (no training starts)."""
        preset = get_preset(name)
        family = get_family(preset.family)
        kinds = [k for k in family.model_kinds() if k in MODEL_KINDS]
        self.w_model.options = kinds
        self.w_model.value = preset.model if preset.model in kinds else kinds[0]
        modes = preset.params.get("modes")
        if "group" in preset.params and isinstance(modes, int):
            orders = _divisors(modes)
            self.w_group.options = [(_group_label(k), k) for k in orders]
            self.w_group.value = preset.params.get("group") or modes
            self.w_group.disabled = False
        else:
            self.w_group.options = [("the target's", 0)]
            self.w_group.value = 0
            self.w_group.disabled = True
        mode = _toggle_mode(preset)
        h = float(preset.params.get("breaking") or 0.0)
        if mode == "breaking":
            self.w_symmetry.value = "broken" if h != 0 else "exact"
        else:  # no h: the target's own symmetry is what it is; the toggle picks fixed/learned p_b
            self.w_symmetry.value = (
                "exact" if preset.params.get("modulation") == "exact" else "broken"
            )
        self.w_symmetry.disabled = mode is None
        if h != 0:
            self.w_breaking.value = min(max(h, BREAKING_RANGE[0]), BREAKING_RANGE[1])
        self._sync_breaking()
        self.w_steps.value = preset.steps
        self.w_batch.value = preset.batch_size
        self.w_lr.value = preset.lr
        self._set_message("")

    def _on_target(self, change) -> None:
        self._apply_preset(change["new"])

    def _sync_breaking(self) -> None:
        """The h slider is live only for a broken target that has an h."""
        self.w_breaking.disabled = (
            self.w_symmetry.disabled
            or self.w_symmetry.value == "exact"
            or _toggle_mode(get_preset(self.w_target.value)) != "breaking"
        )

    def _on_setting(self, change) -> None:
        # Only validation feedback here: changing a control never starts training.
        self._sync_breaking()
        try:
            self.read_settings()
        except ConfigError as err:
            self._set_message(str(err), "error")
        else:
            if not self.running:
                self._set_message("")

    def read_settings(self) -> Settings:
        """The controls' values, validated; raises ConfigError naming the bad value."""
        preset = get_preset(self.w_target.value)
        overrides: dict = {}
        if not self.w_group.disabled:
            overrides["group"] = positive_int("group", self.w_group.value)
        mode = _toggle_mode(preset)
        if mode == "breaking":
            if self.w_symmetry.value == "broken":
                overrides["breaking"] = float_in_range(
                    "breaking h", self.w_breaking.value, *BREAKING_RANGE
                )
            else:
                overrides["breaking"] = 0.0
        elif mode == "modulation":
            overrides["modulation"] = "learned" if self.w_symmetry.value == "broken" else "exact"
        steps = positive_int("steps", self.w_steps.value)
        if steps > MAX_STEPS:
            raise ConfigError(f"steps must be in [1, {MAX_STEPS}] (got {steps})")
        batch = positive_int("batch", self.w_batch.value)
        if not 2 <= batch <= MAX_BATCH:
            raise ConfigError(f"batch must be in [2, {MAX_BATCH}] (got {batch})")
        lr = float_in_range("learning rate", self.w_lr.value, 0.0, MAX_LR, low_open=True)
        seed = self.w_seed.value
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be an integer >= 0 (got {seed!r})")
        return Settings(preset.name, self.w_model.value, overrides, steps, batch, lr, seed)

    def _set_message(self, text: str, kind: str = "info") -> None:
        colour = {"info": "#333", "error": "#b00020", "ok": "#1b5e20"}[kind]
        self.w_message.value = (
            f'<div style="color:{colour};white-space:normal">{html.escape(text)}</div>'
            if text
            else ""
        )
        self.message_kind = kind if text else ""

    @property
    def message(self) -> str:
        """The text of the message line (empty when there is none)."""
        import re  # noqa: PLC0415

        return html.unescape(re.sub(r"<[^>]+>", "", self.w_message.value))

    def _set_running(self, running: bool) -> None:
        self.w_train.disabled = running
        self.w_stop.disabled = not running
        for w in (
            self.w_target,
            self.w_model,
            self.w_group,
            self.w_steps,
            self.w_batch,
            self.w_lr,
            self.w_seed,
        ):
            w.disabled = running or (w is self.w_group and self.w_group.options[0][1] == 0)
        self.w_symmetry.disabled = running or _toggle_mode(get_preset(self.w_target.value)) is None
        self._sync_breaking()

    # --- buttons ---------------------------------------------------------------------------------
    def train(self) -> bool:
        """What the Train button does; returns False when the settings were refused."""
        if self.running:
            self._set_message("already training: press Stop first", "error")
            return False
        self._pressed_at = time.perf_counter()
        try:
            settings = self.read_settings()
            run = prepare_run(
                settings.preset,
                settings.model,
                overrides=settings.overrides,
                steps=settings.steps,
                batch_size=settings.batch,
                lr=settings.lr,
                seed=settings.seed,
            )
            cfg = TrainConfig(
                steps=settings.steps,
                batch_size=settings.batch,
                lr=settings.lr,
                seed=settings.seed,
                log_every=min(self.log_every, settings.steps),
                **run.preset.train_options,
            )
        except ConfigError as err:
            self._set_message(f"refused: {err}", "error")
            return False
        except Exception as err:  # a bug while building must not vanish into the widget log
            self._set_message(f"could not build the model: {type(err).__name__}: {err}", "error")
            return False
        # Only now replace the previous model: a refused press keeps everything as it was.
        self.settings = settings
        self.model, self.target = run.model, run.target
        self.history = History()
        self.error = None
        self.density_updates = 0
        self.first_update_latency = None
        view_key = (settings.preset, tuple(sorted(settings.overrides.items())))
        if view_key != self._view_key:
            self._view, self._view_key = view_for(run.target), view_key
        self.w_progress.max, self.w_progress.value = settings.steps, 0
        self._stop.clear()
        self._set_running(True)
        self._set_message(f"training {settings.model} on {settings.preset} …")
        self._thread = threading.Thread(
            target=self._worker,
            args=(run.model, run.target, cfg),
            daemon=True,
            name="sesamo-dashboard-train",
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """What the Stop button does: ask the thread to end after its current step."""
        self._stop.set()

    def _on_train(self, _button) -> None:
        self.train()

    def _on_stop(self, _button) -> None:
        self.stop()

    # --- the training thread ---------------------------------------------------------------------
    def _worker(self, model: SamplingModel, target: Target, cfg: TrainConfig) -> None:
        self._last_draw = 0.0
        try:
            _training.train(
                model,
                target,
                cfg,
                callback=self._on_progress,
                stop_event=self._stop,
                history=self.history,
            )
            self._redraw(model, target)  # the final state, whatever the throttle said
        except Exception as err:  # shown, not raised: the kernel and the last model survive
            self.error = err
            where = traceback.extract_tb(err.__traceback__)[-1]
            self._set_message(
                f"error during training: {type(err).__name__}: {err} "
                f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno}); the model keeps its "
                "last parameters",
                "error",
            )
        else:
            h = self.history
            how = "stopped" if h.stopped else "finished"
            self._set_message(
                f"{how} after {len(h.step)} steps ({h.seconds:.1f} s); the model is kept",
                "ok",
            )
        finally:
            self._set_running(False)

    def _on_progress(self, step: int, history: History, model: SamplingModel) -> None:
        self.w_progress.value = len(history.step)
        now = time.perf_counter()
        if self.density_updates == 0 or now - self._last_draw >= self.update_interval:
            self._redraw(model, self.target)

    def _redraw(self, model: SamplingModel, target: Target) -> None:
        h = self.history
        if h is None or not h.step or self._view is None:
            return
        title = f"{self.settings.model} on {self.settings.preset}, step {h.step[-1] + 1}"
        # Lattice fields cost far more per sample than a point in the plane: draw fewer.
        n = self.samples if self._view.kind == "density" else min(self.samples, 1000)
        self.w_density.value = self._view.render(model, n, title)
        self.w_curves.value = curves_png(h, target.log_z is not None)
        self.w_progress.value = len(h.step)
        self.w_metrics.value = self._metrics_html(model, target)
        self.density_updates += 1
        if self.first_update_latency is None:
            self.first_update_latency = time.perf_counter() - self._pressed_at
        self._last_draw = time.perf_counter()

    def _metrics_html(self, model: SamplingModel, target: Target) -> str:
        h = self.history
        rows = [
            ("step", f"{h.step[-1] + 1}"),
            ("loss", f"{h.loss[-1]:.4f}"),
            ("batch ESS", f"{h.ess[-1]:.3f}"),
        ]
        if h.kl[-1] is not None:
            rows.append(("KL", f"{h.kl[-1]:.4f}"))
        if h.outside and h.outside[-1] is not None:
            rows.append(("outside Ω", f"{h.outside[-1]:.3%}"))
        probs = model.learned_sector_probs()
        if (
            probs is not None
            and probs.numel() <= 8
            and getattr(model.modulation, "learnable", False)
        ):
            rows.append(("learned p_b", " ".join(f"{p:.3f}" for p in probs.tolist())))
        if self.first_update_latency is not None:
            rows.append(("first picture", f"{self.first_update_latency:.2f} s after Train"))
        cells = "".join(f"<tr><td>{k}</td><td><code>{v}</code></td></tr>" for k, v in rows)
        return f'<table style="font-size:90%">{cells}</table>'


def dashboard(preset: str = "gmm-z8-broken", **kwargs) -> Dashboard:
    """Create and display a dashboard; returns it (its ``model`` holds the last trained model)."""
    return Dashboard(preset, **kwargs).show()
