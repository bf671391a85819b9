"""Latency of the dashboard's first live picture after pressing Train (in Python, no browser).

Aim (issue 6): the first live density update on the Gaussian mixture within 5 s of Train.
Two cases: "cold" presses Train right after the dashboard is created (the one-off warm-up of
torch's optimizer and matplotlib still runs in the background), "warm" presses it again later.
The browser adds the transfer of one PNG (tens of kB) on top; tests/test_browser.py prints the
same figure as measured inside the kernel behind Voila and JupyterLab.

Usage: python benchmarks/dashboard.py [--preset gmm-z8-broken] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sesamo_lab.dashboard import Dashboard


def first_picture(dash: Dashboard, timeout: float = 60.0) -> float:
    """Press Train, wait for the first live picture, press Stop; returns the latency in s."""
    assert dash.train(), dash.message
    end = time.monotonic() + timeout
    while dash.first_update_latency is None and dash.running and time.monotonic() < end:
        time.sleep(0.005)
    latency = dash.first_update_latency
    dash.stop()
    dash.wait(timeout)
    if latency is None:
        raise RuntimeError(f"no live picture within {timeout} s: {dash.message}")
    return latency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gmm-z8-broken")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    dash = Dashboard(args.preset)
    built = time.perf_counter() - t0
    cold = first_picture(dash)
    time.sleep(1.0)
    warm = [first_picture(dash) for _ in range(args.repeats)]
    print(f"torch {torch.__version__}, {args.threads} thread(s), preset {args.preset}")
    print(f"dashboard created in {built:.2f} s")
    print(f"first live picture, cold (right after creation): {cold:.2f} s")
    print(
        f"first live picture, warm: median {statistics.median(warm):.2f} s "
        f"(min {min(warm):.2f}, max {max(warm):.2f}, {args.repeats} presses)"
    )


if __name__ == "__main__":
    main()
