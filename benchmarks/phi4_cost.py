"""Cost of one effectively independent φ⁴ configuration: trained flow vs Hybrid Monte Carlo.

    flow:  (wall time to draw n samples with log q and S) / (n · ESS)
    HMC:   (wall time per trajectory per chain) · 2 τ_int(|M|)

Both on the same lattice and couplings, same thread count; the ratio HMC / flow is printed
(> 1: the flow is cheaper per independent sample, training cost not included; the time to train
the flow is printed beside it, with the number of samples after which training has paid off).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/phi4_cost.py --run runs/complex-phi4-sesamo
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/phi4_cost.py --preset complex-phi4-4x4
(``--preset`` trains the preset first with its default budget.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sesamo_lab.hmc import run_hmc
from sesamo_lab.io import load_model
from sesamo_lab.metrics import ess
from sesamo_lab.observables import configuration_observables, integrated_autocorrelation


def flow_cost(model, target, n: int) -> dict:
    with torch.no_grad():
        model.draw(256)  # warm-up
        t0 = time.perf_counter()
        d = model.draw(n)
        log_w = -target.action(d.x) - d.log_q
        seconds = time.perf_counter() - t0
    e = ess(log_w)
    return {"seconds": seconds, "n": n, "ess": e, "cost_per_independent": seconds / (n * e)}


def hmc_cost(target, trajectories: int, chains: int, step: float, leapfrog: int) -> dict:
    res = run_hmc(target, trajectories, chains=chains, step_size=step, n_leapfrog=leapfrog)
    x = res.samples
    obs = configuration_observables(x.reshape(-1, *target.event_shape), target)
    abs_m = obs["abs_m"].reshape(x.shape[0], x.shape[1])
    tau, tau_err = integrated_autocorrelation(abs_m)
    per_traj = res.seconds / ((trajectories + 100) * chains)  # thermalisation counted too
    return {
        "acceptance": res.acceptance,
        "tau_int_abs_m": tau,
        "tau_int_error": tau_err,
        "seconds_per_trajectory": per_traj,
        "cost_per_independent": per_traj * 2 * tau,
        "step_size": step,
        "n_leapfrog": leapfrog,
        "chains": chains,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="folder of a trained model (from sesamo-lab train --out)")
    p.add_argument("--preset", help="train this preset first instead")
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--trajectories", type=int, default=2000)
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--step", type=float, default=0.12)
    p.add_argument("--leapfrog", type=int, default=10)
    args = p.parse_args(argv)
    train_seconds = None
    if args.run:
        model, target, _ = load_model(args.run)
        mpath = Path(args.run) / "metrics.json"
        if mpath.is_file():
            train_seconds = json.loads(mpath.read_text()).get("train_seconds")
    elif args.preset:
        from sesamo_lab.runner import prepare_run  # noqa: PLC0415
        from sesamo_lab.training import train  # noqa: PLC0415

        run = prepare_run(args.preset)
        train_seconds = train(run.model, run.target, run.train_config).seconds
        model, target = run.model, run.target
    else:
        p.error("give --run DIR or --preset NAME")
    model.eval()
    flow = flow_cost(model, target, args.samples)
    hmc = hmc_cost(target.double(), args.trajectories, args.chains, args.step, args.leapfrog)
    ratio = hmc["cost_per_independent"] / flow["cost_per_independent"]
    print(
        f"lattice {target.lattice_label()}  kappa={target.kappa}  lam={target.lam}  "
        f"h={target.breaking}  threads={torch.get_num_threads()}"
    )
    print(
        f"flow: ESS {flow['ess']:.4f}, {flow['seconds'] / flow['n'] * 1e6:.1f} us/sample, "
        f"{flow['cost_per_independent'] * 1e6:.1f} us per independent sample"
    )
    print(
        f"HMC:  acceptance {hmc['acceptance']:.3f}, tau_int(|M|) {hmc['tau_int_abs_m']:.2f} "
        f"± {hmc['tau_int_error']:.2f}, {hmc['seconds_per_trajectory'] * 1e6:.1f} us/trajectory, "
        f"{hmc['cost_per_independent'] * 1e6:.1f} us per independent sample"
    )
    print(f"ratio HMC / flow cost per independent sample: {ratio:.2f}")
    if train_seconds:
        saved = hmc["cost_per_independent"] - flow["cost_per_independent"]
        if saved > 0:
            print(
                f"training ({train_seconds:.0f} s) pays off after {train_seconds / saved:.3g} "
                "independent samples"
            )
    print(json.dumps({"flow": flow, "hmc": hmc, "ratio": ratio, "train_seconds": train_seconds}))


if __name__ == "__main__":
    main()
