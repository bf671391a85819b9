"""Wall time of the Gaussian-mixture presets at their default budget (median of 3 runs).

Aim (issue 2): at most 60 s per preset on 2 CPU cores, so a class can retrain live.
Usage: python benchmarks/gmm_training.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sesamo_lab.runner import execute, prepare_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--presets", default="gmm-z8,gmm-z8-broken")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} repeats")
    print(f"{'preset':<16}{'train s (median)':>18}{'total s':>10}{'ESS':>9}{'KL':>10}")
    for name in args.presets.split(","):
        train_s, total_s, ess, kl = [], [], [], []
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            run = prepare_run(name, "sesamo", seed=seed)
            m = execute(run, None)
            total_s.append(time.perf_counter() - t0)
            train_s.append(m["train_seconds"])
            ess.append(m["ess"])
            kl.append(m["kl"])
        print(
            f"{name:<16}{statistics.median(train_s):>18.1f}{statistics.median(total_s):>10.1f}"
            f"{statistics.median(ess):>9.4f}{statistics.median(kl):>10.5f}"
        )


if __name__ == "__main__":
    main()
