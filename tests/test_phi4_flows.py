"""Lattice flows and the U(1) slice model: invertibility, log-dets, density self-consistency."""

import math

import pytest
import torch
from conftest import assert_bijection, perturb

from sesamo_lab.flows import Flow
from sesamo_lab.lattice_flows import (
    ChannelShift,
    FourierScaling,
    checkerboard,
    lattice_realnvp,
    slice_flow,
)
from sesamo_lab.metrics import density_self_consistency
from sesamo_lab.penalty import BijectivityPenalty
from sesamo_lab.u1 import PiecewiseLinearAngle, U1SliceSESaMo, UniformAngle, rotate


@pytest.mark.parametrize("shape", [(4, 4), (2, 2, 3), (3, 5)])
def test_lattice_flow_logdet_and_inverse(f64, shape):
    torch.manual_seed(0)
    flow = lattice_realnvp(shape, couplings=3, hidden=6)
    perturb(flow, 0.3)
    assert_bijection(flow, torch.randn(2, *shape), rtol=1e-8, inverse_rtol=1e-7)


def test_lattice_flow_identity_at_init_and_translation_equivariant(f64):
    torch.manual_seed(1)
    flow = lattice_realnvp((6, 6), couplings=4, hidden=6)
    z = torch.randn(2, 6, 6)
    x, ld = flow(z)
    torch.testing.assert_close(x, z)
    torch.testing.assert_close(ld, torch.zeros(2))
    perturb(flow.layers[:-1], 0.3)  # couplings only: the final affine is shared per channel
    x, _ = flow(z)
    shifted, _ = flow(torch.roll(z, (2, 4), dims=(1, 2)))  # even shift keeps the checkerboard
    torch.testing.assert_close(shifted, torch.roll(x, (2, 4), dims=(1, 2)))
    assert checkerboard(2, 2).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_lattice_flow_with_linear_layer_logdet(f64):
    torch.manual_seed(2)
    flow = lattice_realnvp((2, 3, 4), couplings=4, hidden=6, linear=True)
    perturb(flow, 0.3)
    assert_bijection(flow, torch.randn(2, 2, 3, 4), rtol=1e-8, inverse_rtol=1e-7)


def test_fourier_scaling_is_real_symmetric_and_has_the_right_logdet(f64):
    torch.manual_seed(3)
    layer = FourierScaling((2, 3, 4), fixed_zero_mode=(1,))
    with torch.no_grad():
        layer.theta.normal_(0, 0.5)
    flow = Flow([layer])
    assert_bijection(flow, torch.randn(3, 2, 3, 4), rtol=1e-10, inverse_rtol=1e-10)
    z = torch.randn(3, 2, 3, 4)
    x, _ = flow(z)
    # translation invariant, and the zero mode of channel 1 passes unchanged
    torch.testing.assert_close(
        flow(torch.roll(z, (1, 3), dims=(2, 3)))[0], torch.roll(x, (1, 3), dims=(2, 3))
    )
    torch.testing.assert_close(x[:, 1].mean((-2, -1)), z[:, 1].mean((-2, -1)))
    assert not torch.allclose(x[:, 0].mean((-2, -1)), z[:, 0].mean((-2, -1)))


@pytest.mark.parametrize("lattice", [(4, 4), (3, 4)])
def test_slice_flow_logdet_and_shift_equivariance_in_channel_1(f64, lattice):
    """F(w + c e) = F(w) + c e for e = constant on channel 1: the slice model's requirement."""
    torch.manual_seed(4)
    flow = slice_flow(lattice, couplings=4, hidden=6)
    perturb(flow, 0.2)
    z = torch.randn(3, 2, *lattice)
    assert_bijection(flow, z, rtol=1e-8, inverse_rtol=1e-7)
    x, ld = flow(z)
    e = torch.zeros(2, *lattice)
    e[1] = 1.0
    x_shifted, ld_shifted = flow(z + 0.7 * e)
    torch.testing.assert_close(x_shifted, x + 0.7 * e)
    torch.testing.assert_close(ld_shifted, ld)
    # a constant on channel 0 is not special: the output does change beyond a shift
    x_a, _ = flow(z + 0.7 * (1 - e))
    assert not torch.allclose(x_a, x + 0.7 * (1 - e), atol=1e-3)
    if lattice[0] % 2 == 0 and lattice[1] % 2 == 0:
        rolled, _ = flow(torch.roll(z, (2, 2), dims=(2, 3)))
        torch.testing.assert_close(rolled, torch.roll(x, (2, 2), dims=(2, 3)))


def _u1_model(lattice, angle, seed):
    torch.manual_seed(seed)
    flow = slice_flow(lattice, couplings=2, hidden=4)
    perturb(flow, 0.05, seed)
    with torch.no_grad():
        for mod in flow.modules():
            if isinstance(mod, ChannelShift):
                mod.shift[0].add_(1.2)  # most slice samples have Re M > 0
    return U1SliceSESaMo(flow, lattice, angle, BijectivityPenalty()).double()


class _Ref:
    def __init__(self, scale):
        self.scale = scale

    def reference_scale(self):
        return self.scale


@pytest.mark.parametrize("broken", [False, True])
def test_u1_log_density_round_trip(broken):
    angle = PiecewiseLinearAngle(12) if broken else UniformAngle()
    if broken:
        with torch.no_grad():
            angle.theta.copy_(torch.linspace(-1, 1, 12) ** 2)
    model = _u1_model((2, 3), angle, 3)
    with torch.no_grad():
        d = model.draw(500)
        inside = ~d.outside
        torch.testing.assert_close(model.log_prob(d.x)[inside], d.log_q[inside])


def test_u1_log_density_has_the_targets_symmetries(f64):
    """Exact U(1): q is invariant under a global phase and checkerboard-preserving shifts."""
    model = _u1_model((4, 4), UniformAngle(), 8)
    perturb(model.flow, 0.2, 8)
    with torch.no_grad():
        x = model.draw(300).x
        lq = model.log_prob(x)
        torch.testing.assert_close(model.log_prob(torch.roll(x, (2, 0), dims=(2, 3))), lq)
        torch.testing.assert_close(model.log_prob(torch.roll(x, (1, 1), dims=(2, 3))), lq)
        phase = torch.full((len(x),), 2.1, dtype=x.dtype)
        torch.testing.assert_close(model.log_prob(rotate(x, phase)), lq)


@pytest.mark.parametrize("broken", [False, True])
def test_u1_density_self_consistency_v3(broken):
    """∫ q = E_r[q/r] equals the slice mass inside Ω (method.md section 6), V = 3."""
    angle = PiecewiseLinearAngle(8) if broken else UniformAngle()
    if broken:
        with torch.no_grad():
            angle.theta.copy_(torch.tensor([0.5, -0.3, 0.2, 1.0, -1.0, 0.0, 0.3, -0.2]))
    model = _u1_model((1, 3), angle, 4)
    torch.manual_seed(5)
    with torch.no_grad():
        inside = 1 - float(model.draw(50_000).outside.double().mean())
    mean, err = density_self_consistency(model, _Ref(1.6), n=80_000)
    print(f"V=3 self-consistency: {mean:.4f} ± {err:.4f}, slice mass inside Ω {inside:.4f}")
    assert abs(mean - inside) < 4 * err + 2e-3, (mean, err, inside)
    assert err < 0.015
    # the check has teeth: without the 1/|M| factor the integral is far from the mass
    with torch.no_grad():
        x = 1.6 * torch.randn(50_000, 2, 1, 3, dtype=torch.float64)
        m_abs = x.sum(-1).sum(-1).norm(dim=1)
        gauss = -0.5 * x.reshape(len(x), -1).pow(2).sum(-1) / 1.6**2 - 6 * (
            math.log(1.6) + 0.5 * math.log(2 * math.pi)
        )
        wrong = (model.log_prob(x) + m_abs.log() - gauss).exp().mean()
    assert abs(float(wrong) - inside) > 0.2


def test_angle_density_is_normalised_and_sampled_correctly(f64):
    torch.manual_seed(6)
    angle = PiecewiseLinearAngle(10)
    with torch.no_grad():
        angle.theta.copy_(torch.randn(10))
    grid = torch.linspace(0, 2 * math.pi, 20_001)
    p = angle.density(grid)
    assert float(torch.trapezoid(p.detach(), grid)) == pytest.approx(1.0, abs=1e-6)
    alpha, log_p = angle.sample(200_000)
    torch.testing.assert_close(log_p, angle.log_prob(alpha))
    # histogram vs density (bin averages), 20 bins
    counts = torch.histc(alpha, bins=20, min=0, max=2 * math.pi) / len(alpha)
    edges = torch.linspace(0, 2 * math.pi, 21)
    mass = torch.stack(
        [
            torch.trapezoid(angle.density(torch.linspace(a, b, 201)), torch.linspace(a, b, 201))
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
    )
    assert torch.all((counts - mass).abs() < 5 * (mass / len(alpha)).sqrt() + 1e-4)


def test_angle_density_gets_a_pathwise_gradient(f64):
    """d/dθ E[f(α)] by reparametrisation matches the exact derivative of ∫ f p_θ."""
    torch.manual_seed(7)
    angle = PiecewiseLinearAngle(6)
    with torch.no_grad():
        angle.theta.copy_(torch.tensor([0.2, -0.4, 0.1, 0.6, -0.2, 0.0]))
    alpha, _ = angle.sample(400_000)
    torch.cos(alpha - 1.0).mean().backward()
    mc = angle.theta.grad.clone()
    angle.theta.grad = None
    grid = torch.linspace(0, 2 * math.pi, 60_001)
    torch.trapezoid(angle.density(grid) * torch.cos(grid - 1.0), grid).backward()
    torch.testing.assert_close(mc, angle.theta.grad, atol=4e-3, rtol=0)
