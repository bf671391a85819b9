"""Sensitivity of SESaMo to the bijectivity penalty Lambda = A sigmoid(B lambda) Theta(lambda).

Trains gmm-z8-broken (default budget) for a grid of strengths A and sharpnesses B and prints
ESS, KL, the fraction of pre-modulation samples outside Omega and the largest error of the
learned sector weights. The reference code's default is A = 1000, B = 100 (method.md §3).
Usage: python benchmarks/penalty_sensitivity.py [--preset gmm-z8-broken] [--seeds 1]
"""

from __future__ import annotations

import argparse
import itertools

import torch

from sesamo_lab.runner import execute, prepare_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gmm-z8-broken")
    ap.add_argument("--strengths", default="10,1000")
    ap.add_argument("--sharpness", default="0.1,1,10,100")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'A':>8}{'B':>8}{'seed':>6}{'ESS':>9}{'KL':>10}{'outside':>10}{'max |dp|':>10}")
    grid = itertools.product(
        map(float, args.strengths.split(",")), map(float, args.sharpness.split(","))
    )
    for a, b in grid:
        for seed in range(args.seeds):
            run = prepare_run(
                args.preset,
                "sesamo",
                seed=seed,
                eval_samples=20_000,
                overrides={"penalty_strength": a, "penalty_sharpness": b},
            )
            m = execute(run, None)
            sp = m["sector_probs"]
            dp = max(abs(x - y) for x, y in zip(sp["learned"], sp["target"], strict=True))
            kl = m["kl"] if m["kl"] is not None else float("nan")
            print(
                f"{a:>8g}{b:>8g}{seed:>6}{m['ess']:>9.4f}{kl:>10.5f}"
                f"{m['outside_domain_fraction']:>10.2e}{dp:>10.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
