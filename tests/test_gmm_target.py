"""The Gaussian-mixture target: exact log Z, sampler and sector masses against quadrature."""

import math

import numpy as np
import pytest
import torch

from sesamo_lab.symmetry import PlaneRotations
from sesamo_lab.targets.gmm import GaussianMixture, wedge_mass
from sesamo_lab.validation import ConfigError


def grid_integral(target, extent=20.0, n=1201):
    g = torch.linspace(-extent, extent, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], -1)
    dens = (-target.action(pts)).exp()
    return pts, dens, float((g[1] - g[0]) ** 2)


@pytest.mark.parametrize(
    "modes,radius,sigma,h", [(8, 12, 1, 0.0), (8, 12, 1, 0.05), (3, 4, 1.5, -0.3), (1, 2, 0.7, 0.2)]
)
def test_log_z_against_grid_quadrature(modes, radius, sigma, h):
    t = GaussianMixture(modes, radius, sigma, h).double()
    _, dens, area = grid_integral(t, extent=radius + 10 * sigma)
    assert abs(math.log(float(dens.sum()) * area) - t.log_z) < 1e-6


def test_log_z_exact_case_closed_form():
    t = GaussianMixture(8, 12, 1, 0)
    assert t.log_z == pytest.approx(math.log(2 * math.pi * 8), abs=1e-12)


@pytest.mark.parametrize("order", [8, 4, 2])
def test_sector_masses_against_polar_quadrature(order):
    """Midpoint rule in (r, theta) per wedge: independent of the closed-form radial integral."""
    t = GaussianMixture(8, 12, 1, 0.05).double()
    nr, nt = 1500, 800
    r = (torch.arange(nr, dtype=torch.float64) + 0.5) * (30.0 / nr)
    masses = []
    for j in range(order):
        lo = 2 * math.pi * j / order - math.pi / order
        th = lo + (torch.arange(nt, dtype=torch.float64) + 0.5) * (2 * math.pi / order / nt)
        rr, tt = torch.meshgrid(r, th, indexing="ij")
        pts = torch.stack([rr * tt.cos(), rr * tt.sin()], -1).reshape(-1, 2)
        dens = (-t.action(pts) - t.log_z).exp() * rr.flatten()
        masses.append(float(dens.sum()) * (30.0 / nr) * (2 * math.pi / order / nt))
    exact = t.sector_masses(PlaneRotations(order))
    assert float(exact.sum()) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(exact, torch.tensor(masses, dtype=torch.float64), atol=1e-6, rtol=0)


def test_wedge_mass_overlapping_modes():
    # wide Gaussian centred off-axis: quadrature of the closed-form radial integral vs grid
    mean, sigma = np.array([1.0, 0.5]), 1.3
    lo, hi = -0.4, 1.1
    g = np.linspace(-12, 12, 2001)
    xx, yy = np.meshgrid(g, g)
    dens = np.exp(-((xx - mean[0]) ** 2 + (yy - mean[1]) ** 2) / (2 * sigma**2)) / (
        2 * np.pi * sigma**2
    )
    ang = np.arctan2(yy, xx)
    grid = dens[(ang > lo) & (ang < hi)].sum() * (g[1] - g[0]) ** 2
    assert wedge_mass(mean, sigma, lo, hi) == pytest.approx(grid, abs=2e-4)


def test_exact_sampler_matches_density():
    torch.manual_seed(3)
    t = GaussianMixture(8, 12, 1, 0.05)
    x = t.sample(400_000)
    sym = t.symmetry()
    freq = torch.bincount(sym.sector(x), minlength=8).double() / x.shape[0]
    exact = t.sector_masses(sym)
    # binomial standard errors
    se = (exact * (1 - exact) / x.shape[0]).sqrt()
    assert ((freq - exact).abs() / se).max() < 4.5
    # mean position: sum_k w_k (c_k - sigma^2 h (1,1))
    mean = (t.component_weights()[:, None] * t.component_means()).sum(0)
    torch.testing.assert_close(x.mean(0), mean, atol=0.05, rtol=0)


def test_action_is_z8_invariant_only_without_breaking():
    sym = PlaneRotations(8)
    x = torch.randn(100, 2, dtype=torch.float64) * 10
    u = torch.full((100,), 3)
    exact = GaussianMixture(8, 12, 1, 0.0).double()
    torch.testing.assert_close(exact.action(sym.act(x, u)), exact.action(x))
    broken = GaussianMixture(8, 12, 1, 0.05).double()
    assert not torch.allclose(broken.action(sym.act(x, u)), broken.action(x))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"modes": 0}, "modes"),
        ({"radius": -1}, "radius"),
        ({"sigma": 0}, "sigma"),
        ({"breaking": float("nan")}, "breaking"),
        ({"modes": 2.5}, "modes"),
    ],
)
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GaussianMixture(**kwargs)
