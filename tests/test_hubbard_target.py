"""Hubbard action: dense block-matrix determinant, symmetries, stabilisation, 2-site reference."""

import math

import numpy as np
import pytest
import torch

from sesamo_lab.lattices import chain, honeycomb, ring, square, two_site
from sesamo_lab.targets.hubbard import (
    HubbardTarget,
    dense_fermion_matrix,
    log_det_one_plus_product,
    naive_log_det_one_plus_product,
    site_flips,
    transfer_matrix,
    two_site_quadrature,
)


def dense_action(target: HubbardTarget, phi: torch.Tensor) -> torch.Tensor:
    """S from slogdet of the (N_t N_x)^2 block matrices: an independent route to the action."""
    e = transfer_matrix(target.hopping, target.delta)
    out = []
    for p in phi:
        logdet = sum(torch.linalg.slogdet(dense_fermion_matrix(e, s * p))[1] for s in (1, -1))
        out.append(p.pow(2).sum() / (2 * target.u_tilde) - logdet)
    return torch.stack(out)


@pytest.mark.parametrize(
    "k,nt,every",
    [
        (two_site(), 1, 8),
        (two_site(0.7), 6, 1),
        (chain(3), 5, 2),
        (ring(4), 7, 3),
        (ring(5), 4, 8),  # odd ring: not bipartite
        (honeycomb(2), 5, 2),
        (square(3), 3, 1),
    ],
)
def test_action_matches_dense_block_determinant(k, nt, every):
    target = HubbardTarget(k, u=3.0, beta=1.7, nt=nt, stabilise_every=every)
    g = torch.Generator().manual_seed(nt)
    phi = 1.5 * torch.randn(4, nt, k.shape[0], generator=g, dtype=torch.float64)
    torch.testing.assert_close(target.action(phi), dense_action(target, phi), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("k", [ring(5), honeycomb(2)])
def test_action_invariant_under_global_flip(k):
    target = HubbardTarget(k, u=4.0, beta=2.0, nt=6)
    phi = 2 * torch.randn(8, 6, k.shape[0], dtype=torch.float64)
    torch.testing.assert_close(target.action(-phi), target.action(phi), rtol=1e-11, atol=1e-9)
    # ... but not under flipping a single site's time-line (a broken symmetry)
    flipped = phi.clone()
    flipped[:, :, 0] *= -1
    assert (target.action(flipped) - target.action(phi)).abs().max() > 1e-3


def test_particle_hole_relation_on_bipartite_lattice():
    """det M[phi,-1] = exp(-sum phi) det M[phi,+1] when sigma K sigma = -K (bipartite)."""
    k = honeycomb(2)
    e = transfer_matrix(k, 0.25)
    phi = torch.randn(5, 4, 8, dtype=torch.float64)
    s_plus, l_plus = log_det_one_plus_product(e, phi)
    s_minus, l_minus = log_det_one_plus_product(e, -phi)
    torch.testing.assert_close(l_minus, l_plus - phi.sum((1, 2)), rtol=1e-10, atol=1e-9)
    assert torch.equal(s_plus, s_minus)


def test_float32_in_float32_out_with_float64_accuracy():
    target = HubbardTarget(ring(4), u=6.0, beta=2.0, nt=16)
    phi = torch.randn(16, 16, 4, dtype=torch.float64)
    ref = target.action(phi)
    target32 = HubbardTarget(ring(4), u=6.0, beta=2.0, nt=16).to(torch.float32)
    assert target32.hopping.dtype == torch.float64  # the hopping matrix stays float64
    s32 = target32.action(phi.float())
    assert s32.dtype == torch.float32
    torch.testing.assert_close(s32.double(), ref, rtol=2e-6, atol=1e-4)


def test_gradient_through_stabilised_determinant():
    target = HubbardTarget(chain(3), u=2.0, beta=1.0, nt=5, stabilise_every=2)
    phi = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(target.action, (phi,), eps=1e-6, atol=1e-6)


def mp_log_det(e: torch.Tensor, phi: torch.Tensor, digits: int = 80) -> float:
    """log|det(1 + prod_t E diag(e^phi_t))| in high-precision arithmetic (mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = digits
    nx = e.shape[0]
    em = mpmath.matrix(e.tolist())
    p = mpmath.eye(nx)
    for t in range(phi.shape[0]):
        d = mpmath.diag([mpmath.exp(mpmath.mpf(float(v))) for v in phi[t]])
        p = em * d * p
    return float(mpmath.log(abs(mpmath.det(mpmath.eye(nx) + p))))


def test_stabilised_product_is_accurate_for_long_time_extents():
    """Site time-sums of +-90: plain float64 loses the small scales, the UDT product does not."""
    nt, k = 64, ring(4)
    e = transfer_matrix(k, 1.0 / 16)
    g = torch.Generator().manual_seed(3)
    offsets = torch.tensor([1.4, -1.4, 1.4, -1.4], dtype=torch.float64)  # sums of +-90
    phi = offsets + 0.5 * torch.randn(2, nt, 4, generator=g, dtype=torch.float64)
    stable = torch.cat([log_det_one_plus_product(e, s * phi)[1] for s in (1, -1)])
    naive = torch.cat([naive_log_det_one_plus_product(e, s * phi) for s in (1, -1)])
    exact = torch.tensor([mp_log_det(e, s * p) for s in (1, -1) for p in phi], dtype=torch.float64)
    torch.testing.assert_close(stable, exact, rtol=1e-11, atol=1e-9)
    assert (naive - exact).abs().max() > 1e-3  # the plain product really is wrong here

    # Where the plain product is still well conditioned the two agree.
    small = 0.3 * torch.randn(3, 12, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        log_det_one_plus_product(e, small)[1], naive_log_det_one_plus_product(e, small)
    )

    # Sums of +-2000 (and a per-slice spread of 64): the plain product overflows, the
    # stabilised one stays finite and matches 1800-digit arithmetic.
    huge = torch.tensor([32.0, -32.0, 32.0, -32.0], dtype=torch.float64)
    huge = huge + 0.3 * torch.randn(1, nt, 4, generator=g, dtype=torch.float64)
    assert not torch.isfinite(naive_log_det_one_plus_product(e, huge)).all()
    sign, logabs = log_det_one_plus_product(e, huge)
    assert sign.item() == 1.0
    assert logabs.item() == pytest.approx(mp_log_det(e, huge[0], digits=1800), rel=1e-13)


def test_two_site_quadrature_against_independent_grid_and_monte_carlo():
    target = HubbardTarget(two_site(), u=18.0, beta=1.0, nt=1)
    log_z, masses = target.log_z, target.sector_masses(target.symmetry())
    assert masses.sum().item() == pytest.approx(1.0, abs=1e-12)
    # (1) a uniform midpoint grid over the plane, through target.action (not the closed form)
    h, half = 0.25, 48.0
    c = torch.arange(-half + h / 2, half, h, dtype=torch.float64)
    a, b = torch.meshgrid(c, c, indexing="ij")
    log_f = -target.action(torch.stack([a, b], -1).reshape(-1, 1, 2)).reshape(a.shape)
    grid_log_z = float(torch.logsumexp(log_f.flatten(), 0)) + 2 * math.log(h)
    assert grid_log_z == pytest.approx(log_z, abs=1e-8)
    f = (log_f - grid_log_z).exp() * h * h
    quadrants = [f[c > 0][:, c > 0], f[c < 0][:, c > 0], f[c > 0][:, c < 0], f[c < 0][:, c < 0]]
    # order u: bit0 = site 0 negative, bit1 = site 1 negative
    torch.testing.assert_close(
        torch.stack([q.sum() for q in quadrants]), masses, rtol=1e-6, atol=1e-9
    )
    # (2) importance sampling from four Gaussians at (+-18, +-18)
    g = torch.Generator().manual_seed(0)
    n, sd = 100_000, 5.0
    signs = torch.tensor([[1, 1], [-1, 1], [1, -1], [-1, -1]], dtype=torch.float64)
    pick = torch.randint(0, 4, (n,), generator=g)
    x = 18 * signs[pick] + sd * torch.randn(n, 2, generator=g, dtype=torch.float64)
    log_r = torch.logsumexp(
        -((x[:, None, :] - 18 * signs) ** 2).sum(-1) / (2 * sd**2), 1
    ) - math.log(4 * 2 * math.pi * sd**2)
    w = (-target.action(x.reshape(-1, 1, 2)) - log_r).exp()
    z_mc, z_err = w.mean().item(), w.std().item() / math.sqrt(n)
    assert abs(z_mc - math.exp(log_z)) < 4 * z_err
    sectors = target.symmetry().sector(x.reshape(-1, 1, 2))
    mc_masses = torch.stack([w[sectors == u].sum() for u in range(4)]) / w.sum()
    torch.testing.assert_close(mc_masses, masses, rtol=0, atol=4e-3)
    # the antiferromagnetic quadrants carry more weight (by ~cosh(1)^2 at the modes)
    assert masses[1] > masses[0] and masses[1] / masses[0] == pytest.approx(2.38, abs=0.05)


def test_quadrature_converged_in_nodes():
    k = two_site()
    lz1, m1 = two_site_quadrature(k, 18.0, 1.0, nodes=120)
    lz2, m2 = two_site_quadrature(k, 18.0, 1.0, nodes=400)
    assert lz1 == pytest.approx(lz2, abs=1e-10)
    torch.testing.assert_close(m1, m2, rtol=1e-9, atol=1e-12)


def test_references_only_for_two_sites_one_slice():
    big = HubbardTarget(ring(4), u=4.0, beta=1.0, nt=2)
    assert big.log_z is None and big.sector_masses(big.symmetry()) is None
    t = HubbardTarget(two_site(), u=18.0, beta=1.0, nt=1)
    assert t.sector_masses(site_flips(2, 2)) is None  # a different event shape: not ours
    assert 17.0 < t.mean_field < 19.0  # mode near phi = U~ = 18
    assert t.reference_scale() > t.mean_field


def test_site_flip_sectors_are_site_sign_patterns():
    sym = site_flips(3, 4)
    x = torch.tensor([[[1.0, -1.0, 2.0, -3.0]] * 3])
    assert sym.sector(x).item() == 0b1010
    assert (sym.domain_constraints(sym.act_inverse(x, sym.sector(x))) <= 0).all()


def test_closed_form_matches_action():
    from sesamo_lab.targets.hubbard import two_site_log_weight

    t = HubbardTarget(two_site(), u=18.0, beta=1.0, nt=1)
    a = np.array([3.0, -20.0, 40.0])
    b = np.array([-2.0, 17.0, 41.0])
    ref = -t.action(torch.tensor(np.stack([a, b], -1)).reshape(-1, 1, 2))
    torch.testing.assert_close(
        torch.tensor(two_site_log_weight(two_site(), 18.0, 1.0, a, b)), ref, rtol=1e-12, atol=1e-10
    )
