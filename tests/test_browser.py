"""End to end in a real headless browser: Voila (the classroom page) and JupyterLab serve
notebooks/dashboard.ipynb, Chromium (Debian's package, driven by Playwright) opens it, presses
Train, waits for the live density picture to change twice, presses Stop and saves screenshots
under test-artifacts/ (voila-*.png, jupyterlab-*.png).

In CI (env CI set) a missing Chromium or Playwright is a failure, not a skip: the classroom
page is a deliverable. Locally the test skips with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
NOTEBOOK = ROOT / "notebooks" / "dashboard.ipynb"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DENSITY_IMG = "img.sesamo-density"
MESSAGE = ".sesamo-message"

pytestmark = pytest.mark.browser


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    _unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited early with status {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"voila did not listen on port {port} within {timeout:.0f} s")


def _start(cmd: list[str], port: int, log_name: str, cwd: Path) -> subprocess.Popen:
    log = (ARTIFACTS / log_name).open("w")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log = log  # type: ignore[attr-defined]
    try:
        _wait_for_port(port, proc, 90)
    except Exception:
        _stop(proc)
        raise
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    proc.log.close()  # type: ignore[attr-defined]


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


@pytest.fixture
def chromium_page():
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 950})
        page.js_errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda e: page.js_errors.append(str(e)))  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture
def voila_url():
    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    cmd = [
        _tool("voila"),
        str(NOTEBOOK),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        "--show_tracebacks=True",
    ]
    proc = _start(cmd, port, "voila.log", ROOT)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(proc)


@pytest.fixture
def jupyterlab_url(tmp_path):
    # A copy: JupyterLab may autosave a notebook after running it, and the committed one must
    # stay without outputs.
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    cmd = [
        _tool("jupyter"),
        "lab",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        "--port-retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--notebook-dir={tmp_path}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    proc = _start(cmd, port, "jupyterlab.log", tmp_path)
    try:
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}"
    finally:
        _stop(proc)


def _train_and_stop(page, prefix: str) -> None:
    """Press Train, wait for two new density pictures, press Stop; screenshots on the way."""
    train = page.get_by_role("button", name="Train")
    train.wait_for(timeout=120_000)  # the kernel ran the notebook, widgets rendered
    density = page.locator(DENSITY_IMG)
    density.wait_for(timeout=30_000)
    before = density.get_attribute("src")
    assert before, "the density picture has no image source"
    page.screenshot(path=str(ARTIFACTS / f"{prefix}-before.png"), full_page=True)
    train.click()
    changed = (
        "([sel, old]) => { const i = document.querySelector(sel);"
        " return i && i.src && i.src !== old && i.naturalWidth > 0; }"
    )
    page.wait_for_function(changed, arg=[DENSITY_IMG, before], timeout=90_000)
    first = density.get_attribute("src")
    # A second, later picture: the live view keeps updating while training runs.
    page.wait_for_function(changed, arg=[DENSITY_IMG, first], timeout=90_000)
    page.screenshot(path=str(ARTIFACTS / f"{prefix}-training.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function(
        "sel => /stopped|finished/.test(document.querySelector(sel)?.innerText || '')",
        arg=MESSAGE,
        timeout=60_000,
    )
    text = page.locator(MESSAGE).inner_text()
    assert re.search(r"(stopped|finished) after \d+ steps", text), text
    assert page.get_by_role("button", name="Train").is_enabled()
    page.wait_for_timeout(1000)  # let the final picture arrive before the screenshot
    page.screenshot(path=str(ARTIFACTS / f"{prefix}-stopped.png"), full_page=True)
    body = page.locator("body").inner_text()
    latency = re.search(r"first picture\s+([\d.]+) s after Train", body)
    if latency:
        print(f"{prefix}: first live picture {latency.group(1)} s after Train (in the kernel)")
    assert not page.js_errors, f"JavaScript errors on the page: {page.js_errors}"


def test_voila_dashboard_trains_live_in_a_headless_browser(voila_url, chromium_page):
    page = chromium_page
    try:
        page.goto(voila_url, timeout=120_000)
        _train_and_stop(page, "voila")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "voila-failure.png"), full_page=True)
        raise


def test_jupyterlab_dashboard_trains_live_in_a_headless_browser(jupyterlab_url, chromium_page):
    page = chromium_page
    try:
        page.goto(jupyterlab_url, timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        # The kernel is up when the status bar reads "Python 3 (ipykernel) | Idle".
        page.wait_for_function("() => /\\|\\s*Idle/.test(document.body.innerText)", timeout=120_000)
        page.locator("li.lm-MenuBar-item", has_text="Run").first.click()
        page.locator("li.lm-Menu-item", has_text="Run All Cells").first.click()
        _train_and_stop(page, "jupyterlab")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-failure.png"), full_page=True)
        raise
