"""Observables: exact values on simple fields, reweighting and jackknife errors."""

import math

import numpy as np
import pytest
import torch

from sesamo_lab.observables import (
    angle_histogram,
    configuration_observables,
    reweighted_estimates,
)
from sesamo_lab.targets.phi4 import ComplexPhi4, RealPhi4


def test_constant_fields_give_exact_observables():
    t = RealPhi4("4x6", 0.3, 0.02)
    x = torch.stack([torch.full((4, 6), 1.5), torch.full((4, 6), -0.5)]).double()
    obs = configuration_observables(x, t)
    np.testing.assert_allclose(obs["m"], [1.5, -0.5])
    np.testing.assert_allclose(obs["abs_m"], [1.5, 0.5])
    np.testing.assert_allclose(obs["corr"], [[2.25] * 4, [0.25] * 4])
    np.testing.assert_allclose(obs["action_density"], t.action(x).numpy() / 24)
    tc = ComplexPhi4("3x3", 0.3, 0.02)
    angle = 2.0
    y = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    y[:, 0], y[:, 1] = 2 * math.cos(angle), 2 * math.sin(angle)
    oc = configuration_observables(y, tc)
    np.testing.assert_allclose(oc["angle"], [angle])
    np.testing.assert_allclose(oc["abs_m"], [2.0])
    np.testing.assert_allclose(oc["corr"], [[4.0] * 3])


def test_two_point_function_of_a_plane_wave():
    # phi = cos(2 pi t / L_t): C(t) = cos(2 pi t / L_t) / 2 exactly
    t = RealPhi4("8x4", 0.3, 0.02)
    tt = torch.arange(8, dtype=torch.float64)
    x = torch.cos(2 * math.pi * tt / 8)[:, None].expand(8, 4)[None]
    obs = configuration_observables(x, t)
    np.testing.assert_allclose(
        obs["corr"][0], 0.5 * np.cos(2 * math.pi * np.arange(8) / 8), atol=1e-12
    )


def _fake_obs(v):
    return {
        "abs_m": np.abs(v),
        "m2": v**2,
        "action_density": v,
        "corr": np.stack([v**2, v**2], -1),
        "m": v,
    }


def test_reweighting_recovers_a_shifted_gaussian_within_errors():
    rng = np.random.default_rng(0)
    mu = 0.4
    v = rng.standard_normal(40_000)
    log_w = mu * v - mu**2 / 2  # N(mu, 1) / N(0, 1)
    est = reweighted_estimates(_fake_obs(v), log_w, volume=1)
    m = est["magnetisation"]
    assert abs(m["mean"] - mu) < 3 * m["error"]
    assert 0.003 < m["error"] < 0.02
    # susceptibility with V = 1: <v^2> - <|v|>^2 for N(mu, 1)
    from math import erf, exp, pi, sqrt

    abs_mean = sqrt(2 / pi) * exp(-(mu**2) / 2) + mu * erf(mu / sqrt(2))
    chi = 1 + mu**2 - abs_mean**2
    s = est["susceptibility"]
    assert abs(s["mean"] - chi) < 3 * s["error"]


def test_uniform_weights_give_plain_means_and_standard_errors():
    rng = np.random.default_rng(1)
    v = rng.standard_normal(10_000) + 2
    est = reweighted_estimates(_fake_obs(v), np.zeros_like(v), volume=1, blocks=100)
    assert est["magnetisation"]["mean"] == pytest.approx(np.mean(v), rel=1e-12)
    assert abs(est["magnetisation"]["error"] / (v.std() / 100) - 1) < 0.25


def test_weighted_angle_histogram_is_a_density():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 2 * math.pi, 50_000)
    log_w = 1.5 * np.cos(a - 1.0)  # von Mises(1, 1.5) by reweighting
    edges, dens, err = angle_histogram(a, log_w, bins=24)
    width = edges[1] - edges[0]
    assert abs((dens * width).sum() - 1) < 1e-12
    centres = 0.5 * (edges[1:] + edges[:-1])
    vm = np.exp(1.5 * np.cos(centres - 1.0)) / (2 * math.pi * np.i0(1.5))
    assert np.all(np.abs(dens - vm) < 4 * err + 0.01)
