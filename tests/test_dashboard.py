"""The dashboard's logic, driven by simulated clicks in Python (no browser, no kernel).

Waits poll with generous timeouts; nothing asserts on speed.
"""

from __future__ import annotations

import time

import pytest
import torch

from sesamo_lab.dashboard import Dashboard
from sesamo_lab.models import SESaMo
from sesamo_lab.targets.gmm import GaussianMixture

TIMEOUT = 90.0


def wait_until(condition, timeout: float = TIMEOUT, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def dash():
    d = Dashboard("gmm-z8-broken", update_interval=0.3, samples=400, log_every=5)
    d.w_batch.value = 128
    yield d
    d.stop()
    d.wait(30)


def params_snapshot(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_train_updates_live_then_stop_keeps_model(dash):
    dash.w_steps.value = 50_000  # far more than the test waits for: Stop must end it
    placeholder = dash.w_density.value
    dash.w_train.click()
    assert dash.running
    assert dash.w_train.disabled and not dash.w_stop.disabled
    wait_until(lambda: dash.density_updates >= 1, what="the first live picture")
    first_picture = dash.w_density.value
    first_curves = dash.w_curves.value
    assert first_picture != placeholder
    assert bytes(first_picture[:4]) == b"\x89PNG"
    seen = len(dash.history.step)
    wait_until(
        lambda: dash.density_updates >= 3 and len(dash.history.step) >= seen + 250,
        what="the history to grow and the pictures to update",
    )
    assert dash.w_density.value != first_picture
    assert dash.w_curves.value != first_curves
    assert dash.w_progress.value > 0
    model = dash.model
    dash.w_stop.click()
    assert dash.wait(60)
    h = dash.history
    assert h.stopped and len(h.step) < 50_000
    assert "stopped" in dash.message
    assert not dash.w_train.disabled and dash.w_stop.disabled
    # The trained model is kept, frozen after Stop, and has learned: the KL fell by orders of
    # magnitude from its start (about 60 nats for the untrained flow on this mixture).
    assert dash.model is model and isinstance(model, SESaMo)
    frozen = params_snapshot(model)
    time.sleep(0.2)
    assert all(torch.equal(a, b) for a, b in zip(frozen, params_snapshot(model), strict=True))
    kl_start = sum(h.kl[:5]) / 5
    kl_end = sum(h.kl[-20:]) / 20
    assert kl_end < 0.1 * kl_start
    x = model.sample(256)
    assert torch.isfinite(model.log_prob(x)).all()


def test_changing_controls_never_starts_training(dash):
    dash.w_group.value = 4
    dash.w_symmetry.value = "exact"
    dash.w_symmetry.value = "broken"
    dash.w_breaking.value = 0.1
    dash.w_steps.value = 123
    dash.w_lr.value = 0.001
    dash.w_model.value = "realnvp"
    time.sleep(0.2)
    assert not dash.running and dash._thread is None
    assert dash.model is None and dash.history is None


def test_controls_map_to_the_run_settings(dash):
    dash.w_group.value = 4
    dash.w_symmetry.value = "exact"
    assert dash.w_breaking.disabled  # h only matters for a broken target
    s = dash.read_settings()
    assert s.overrides == {"group": 4, "breaking": 0.0}
    dash.w_symmetry.value = "broken"
    dash.w_breaking.value = 0.12
    dash.w_steps.value = 10
    assert dash.read_settings().overrides == {"group": 4, "breaking": 0.12}
    dash.w_train.click()
    assert dash.wait(60)
    # Z4 modulation on the 8-mode mixture, learned p_b because the target is broken.
    assert dash.model.symmetry.order == 4 and dash.model.modulation.learnable
    assert dash.target.breaking == pytest.approx(0.12)
    assert len(dash.history.step) == 10 and "finished" in dash.message


@pytest.mark.parametrize(
    ("widget", "value", "needle"),
    [
        ("w_lr", 5.0, "learning rate must be in (0.0, 0.1]"),
        ("w_lr", 0.0, "learning rate must be in (0.0, 0.1]"),
        ("w_steps", 0, "steps must be a positive integer"),
        ("w_steps", 10**7, "steps must be in [1, 100000]"),
        ("w_batch", 1, "batch must be in [2, 8192]"),
        ("w_seed", -1, "seed must be an integer >= 0"),
    ],
)
def test_out_of_range_values_are_refused_with_a_message(dash, widget, value, needle):
    getattr(dash, widget).value = value
    assert needle in dash.message  # shown as soon as the value is entered
    assert dash.message_kind == "error"
    assert dash.train() is False
    assert dash.w_train.click() is None and not dash.running
    assert "refused" in dash.message and needle in dash.message
    assert dash.model is None  # nothing was built


def test_refused_press_keeps_the_previous_model(dash):
    dash.w_steps.value = 10
    dash.w_train.click()
    assert dash.wait(60)
    model, history = dash.model, dash.history
    dash.w_lr.value = 1.0
    dash.w_train.click()
    assert not dash.running and dash.model is model and dash.history is history


def test_error_during_training_is_shown_and_the_model_kept(dash, monkeypatch):
    calls = {"n": 0}
    original = GaussianMixture.action

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] > 30:
            raise RuntimeError("simulated failure in the action")
        return original(self, x)

    monkeypatch.setattr(GaussianMixture, "action", flaky)
    dash.w_steps.value = 1000
    dash.w_train.click()
    assert dash.wait(60)
    assert isinstance(dash.error, RuntimeError)
    assert "RuntimeError: simulated failure in the action" in dash.message
    assert dash.message_kind == "error"
    assert not dash.w_train.disabled and dash.w_stop.disabled
    model = dash.model
    assert model is not None and len(dash.history.step) >= 25
    assert torch.isfinite(model.log_prob(model.sample(64))).all()
    # The dashboard (and the process) survive: after the fault is gone, Train works again.
    monkeypatch.setattr(GaussianMixture, "action", original)
    dash.w_steps.value = 10
    dash.w_train.click()
    assert dash.wait(60)
    assert dash.error is None and "finished after 10 steps" in dash.message


def test_second_train_while_running_is_refused(dash):
    dash.w_steps.value = 50_000
    dash.w_train.click()
    wait_until(lambda: dash.history is not None and len(dash.history.step) > 0)
    model = dash.model
    assert dash.train() is False and "already training" in dash.message
    assert dash.model is model
    dash.stop()
    assert dash.wait(60)


def test_target_switch_sets_controls_and_picks_the_picture(dash):
    dash.w_target.value = "hubbard-2x1"  # no h: the toggle picks fixed or learned p_b
    assert dash.w_group.disabled and dash.w_breaking.disabled and not dash.w_symmetry.disabled
    dash.w_symmetry.value = "exact"
    assert dash.read_settings().overrides == {"modulation": "exact"}
    dash.w_symmetry.value = "broken"
    assert dash.read_settings().overrides == {"modulation": "learned"}
    dash.w_steps.value, dash.w_batch.value = 8, 64
    dash.w_train.click()
    assert dash.wait(120) and dash.error is None, dash.message
    assert dash.model.modulation.learnable
    assert dash._view.kind == "density"  # two field components: density beside the target
    # The exact panel is a normalised density: it integrates to 1 on the plotted square.
    area = (dash._view.edges[1] - dash._view.edges[0]) ** 2
    assert dash._view.exact.sum() * area == pytest.approx(1.0, abs=0.02)

    dash.w_target.value = "scalar-phi4-broken-4x4"  # a lattice field: histograms
    assert not dash.w_breaking.disabled
    assert dash.read_settings().overrides["breaking"] == pytest.approx(0.016)
    dash.w_steps.value, dash.w_batch.value = 4, 16
    dash.w_train.click()
    assert dash.wait(120) and dash.error is None, dash.message
    assert dash._view.kind == "histogram" and dash.density_updates >= 1


def test_plane_view_exact_panel_matches_exact_samples():
    import numpy as np  # noqa: PLC0415

    from sesamo_lab.live_views import PlaneDensityView, plane_extent, running_mean  # noqa: PLC0415

    torch.manual_seed(0)
    target = GaussianMixture(8, 12.0, 1.0, 0.05)
    view = PlaneDensityView(target, plane_extent(target), bins=40)
    x = target.sample(200_000).numpy()
    h, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=[view.edges, view.edges])  # rows: x2
    area = (view.edges[1] - view.edges[0]) ** 2
    # Total variation between the binned exact density and the histogram of exact samples.
    tv = 0.5 * np.abs(view.exact * area - h / len(x)).sum()
    assert tv < 0.05  # midpoint-rule binning ~0.02; a wrong density gives ~0.5
    assert running_mean(np.array([1.0, 3.0, 5.0, 7.0]), 2).tolist() == [1.0, 2.0, 4.0, 6.0]


def test_error_while_building_is_shown(dash, monkeypatch):
    import sesamo_lab.dashboard as module  # noqa: PLC0415

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure while building")

    monkeypatch.setattr(module, "prepare_run", broken)
    dash.w_train.click()
    assert not dash.running and dash.model is None
    assert "could not build the model: RuntimeError: simulated failure" in dash.message
