"""HMC: reversibility, ε² energy-error scaling, exactness on a Gaussian, autocorrelation time."""

import math

import numpy as np
import pytest
import torch

from sesamo_lab.hmc import _kinetic, leapfrog, run_hmc
from sesamo_lab.observables import integrated_autocorrelation
from sesamo_lab.targets.phi4 import ComplexPhi4, RealPhi4


@pytest.mark.parametrize(
    "target", [RealPhi4("4x4", 0.3, 0.02, 0.01), ComplexPhi4("3x4", 0.3, 0.02, 0.02)]
)
def test_leapfrog_is_reversible(target):
    torch.manual_seed(0)
    phi = 2.0 + 0.5 * torch.randn(3, *target.event_shape, dtype=torch.float64)
    p = torch.randn_like(phi)
    phi1, p1 = leapfrog(target.action, phi, p, 0.05, 20)
    phi2, p2 = leapfrog(target.action, phi1, -p1, 0.05, 20)
    torch.testing.assert_close(phi2, phi, rtol=0, atol=1e-10)
    torch.testing.assert_close(-p2, p, rtol=0, atol=1e-10)


@pytest.mark.parametrize("target", [RealPhi4("4x4", 0.3, 0.02), ComplexPhi4("4x4", 0.3, 0.02)])
def test_energy_error_scales_as_step_squared(target):
    torch.manual_seed(1)
    phi = 2.0 + 0.6 * torch.randn(64, *target.event_shape, dtype=torch.float64)
    if target.complex_field:
        phi[:, 1] -= 2.0
    p = torch.randn_like(phi)
    h0 = _kinetic(p) + target.action(phi)
    errors = []
    tau = 0.8
    for eps in (0.1, 0.05, 0.025):
        phi1, p1 = leapfrog(target.action, phi, p, eps, round(tau / eps))
        errors.append(float((_kinetic(p1) + target.action(phi1) - h0).abs().mean()))
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    for r in ratios:
        assert 3.3 < r < 4.7, (errors, ratios)


def test_hmc_samples_a_gaussian_exactly():
    """lam = 0: Gaussian with covariance A^{-1}/2, A = (1) - kappa (adjacency); compare <phi^2>."""
    target = RealPhi4("2x3", 0.15, 0.0, 0.3)
    v = 6
    a = torch.eye(v, dtype=torch.float64)
    idx = torch.arange(v).reshape(2, 3)
    for t in range(2):
        for x in range(3):
            for tt, xx in (((t + 1) % 2, x), (t, (x + 1) % 3)):
                a[idx[t, x], idx[tt, xx]] -= 0.15
                a[idx[tt, xx], idx[t, x]] -= 0.15
    # S = phi^T A phi + h sum(phi): mean = -A^{-1} h 1 / 2, covariance (2A)^{-1}
    cov = torch.linalg.inv(2 * a)
    mean = -torch.linalg.solve(a, 0.3 * torch.ones(v, dtype=torch.float64)) / 2
    res = run_hmc(target, 1500, chains=16, step_size=0.3, n_leapfrog=5, thermalise=50, seed=2)
    x = res.samples.reshape(res.samples.shape[0], 16, -1)
    got_mean = x.mean((0, 1))
    got_var = x.var((0, 1))
    assert res.acceptance > 0.8
    n_eff = 1500 * 16 / 2  # generous: tau_int ~ 1 for this step size
    assert torch.all((got_mean - mean).abs() < 5 * (cov.diagonal() / n_eff).sqrt())
    assert torch.all((got_var - cov.diagonal()).abs() < 5 * cov.diagonal() * math.sqrt(2 / n_eff))


def test_integrated_autocorrelation_of_ar1():
    rng = np.random.default_rng(3)
    rho = 0.8
    n, chains = 20_000, 4
    x = np.zeros((n, chains))
    for t in range(1, n):
        x[t] = rho * x[t - 1] + math.sqrt(1 - rho**2) * rng.standard_normal(chains)
    tau, err = integrated_autocorrelation(x)
    exact = 0.5 * (1 + rho) / (1 - rho)  # 4.5
    assert abs(tau - exact) < 3 * err + 0.2, (tau, err)
    tau_white, _ = integrated_autocorrelation(rng.standard_normal((5000, 2)))
    assert abs(tau_white - 0.5) < 0.1
