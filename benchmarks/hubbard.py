"""Speed of the Hubbard action (18 x 100, float64) and of one training step.

Prints, each as the median of ``--repeats`` timings after a warm-up:
  * action evaluations per second for the hubbard-18x100 target (honeycomb, 18 sites,
    N_t = 100) in float64, without and with the backward pass, for a few batch sizes and
    stabilisation intervals;
  * wall time of one SESaMo training step of the hubbard-18x100 preset at its default batch
    size (draw, action, loss, backward, Adam), and of hubbard-2x1 for comparison.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/hubbard.py [--repeats 5] [--device cpu]
Thread count and device are printed; timings on a shared machine vary with its load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sesamo_lab.runner import prepare_run
from sesamo_lab.training import reinforce_surrogate


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_action(device: torch.device, repeats: int) -> None:
    run = prepare_run("hubbard-18x100", device=str(device), dtype="float64")
    target = run.target
    m, width = target.mean_field, target.u_tilde**0.5
    print(f"action, 18 x 100 honeycomb, float64, U = {target.u:g}, beta = {target.beta:g}")
    print(f"{'batch':>6} {'every':>6} {'evals/s':>10} {'evals/s (+grad)':>16}")
    for batch in (32, 128, 512):
        for every in (4, 8, 16):
            target.stabilise_every = every
            g = torch.Generator(device=device).manual_seed(0)
            phi = m + width * torch.randn(
                batch, *target.event_shape, generator=g, dtype=torch.float64, device=device
            )

            def forward(phi=phi):
                with torch.no_grad():
                    target.action(phi)

            def backward(phi=phi):
                p = phi.clone().requires_grad_(True)
                target.action(p).sum().backward()

            t_f = median_seconds(forward, repeats, device)
            t_b = median_seconds(backward, repeats, device)
            print(f"{batch:>6} {every:>6} {batch / t_f:>10.0f} {batch / t_b:>16.0f}")


def bench_step(preset: str, device: torch.device, repeats: int, dtype: str) -> None:
    run = prepare_run(preset, device=str(device), dtype=dtype)
    model, target, batch = run.model, run.target, run.train_config.batch_size
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)

    def step():
        d = model.draw(batch)
        f = d.log_q + target.action(d.x)
        loss = (f + d.penalty).mean()
        if d.score is not None:
            loss = loss + reinforce_surrogate(f, d.score)
        opt.zero_grad()
        loss.backward()
        opt.step()

    sec = median_seconds(step, repeats, device)
    print(f"training step {preset:<16} batch {batch:>4} {dtype}: {1000 * sec:8.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {device}")
    bench_action(device, args.repeats)
    for preset in ("hubbard-18x100", "hubbard-4x8", "hubbard-2x1"):
        bench_step(preset, device, args.repeats, "float32")


if __name__ == "__main__":
    main()
