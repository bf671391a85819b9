"""Bijections: invertibility, log-det against the autograd Jacobian, identity at init."""

import pytest
import torch
from conftest import assert_bijection, jacobian_logdet, perturb

from sesamo_lab.flows import AffineCoupling, ElementwiseAffine, MLPConditioner, realnvp
from sesamo_lab.prior import StandardNormal


@pytest.mark.parametrize("shape", [(2,), (5,), (3, 4)])
def test_realnvp_logdet_matches_autograd_and_inverts(f64, shape):
    torch.manual_seed(1)
    flow = realnvp(shape, couplings=4, hidden=16)
    perturb(flow, 0.4)
    assert_bijection(flow, torch.randn(6, *shape), rtol=1e-9)


def test_single_coupling_only_moves_unmasked_entries(f64):
    mask = torch.tensor([1.0, 0.0, 1.0])
    layer = AffineCoupling(mask, MLPConditioner((3,), 8, 1))
    perturb(layer, 0.5)
    z = torch.randn(10, 3)
    x, _ = layer(z)
    torch.testing.assert_close(x[:, [0, 2]], z[:, [0, 2]])
    assert not torch.allclose(x[:, 1], z[:, 1])


def test_elementwise_affine_logdet(f64):
    layer = ElementwiseAffine((2,))
    perturb(layer, 0.7)
    z = torch.randn(4, 2)
    x, ld = layer(z)
    torch.testing.assert_close(ld, jacobian_logdet(layer, z))
    torch.testing.assert_close(layer.inverse(x)[0], z)


def test_identity_at_initialisation_and_not_after_perturbation():
    flow = realnvp((2,), couplings=6, hidden=32)
    z = torch.randn(100, 2)
    x, ld = flow(z)
    torch.testing.assert_close(x, z)
    torch.testing.assert_close(ld, torch.zeros(100))
    perturb(flow, 0.3)
    x2, ld2 = flow(z)
    assert (x2 - z).abs().max() > 0.1
    assert ld2.abs().max() > 0.01


def test_float32_and_float64_follow_the_module_dtype():
    flow = realnvp((2,), couplings=2, hidden=8).double()
    x, ld = flow(torch.randn(3, 2, dtype=torch.float64))
    assert x.dtype == ld.dtype == torch.float64
    prior = StandardNormal((2,)).double()
    assert prior.sample(4).dtype == torch.float64


def test_prior_is_a_normalised_standard_normal(f64):
    prior = StandardNormal((2,))
    # integrate exp(log q0) on a grid
    g = torch.linspace(-8, 8, 401)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], -1)
    integral = prior.log_prob(pts).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(float(integral) - 1) < 1e-6
