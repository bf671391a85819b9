"""Groups, fundamental domains, the penalty and the modulation distribution."""

import math

import pytest
import torch

from sesamo_lab.modulation import CategoricalModulation
from sesamo_lab.penalty import BijectivityPenalty
from sesamo_lab.symmetry import BlockFlips, PlaneRotations, global_flip
from sesamo_lab.validation import ConfigError


def points_in_wedge(n, order, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = 0.1 + 10 * torch.rand(n, generator=g, dtype=torch.float64)
    a = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * math.pi / order * 0.999
    return torch.stack([r * a.cos(), r * a.sin()], -1)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 8])
def test_plane_rotation_sectors_round_trip(order):
    sym = PlaneRotations(order)
    y = points_in_wedge(500, order)
    assert (sym.domain_constraints(y) <= 0).all()
    assert not sym.outside(y).any()
    u = torch.randint(0, order, (500,))
    x = sym.act(y, u)
    assert torch.equal(sym.sector(x), u)
    torch.testing.assert_close(sym.act_inverse(x, u), y)
    # rotations preserve length
    torch.testing.assert_close(x.norm(dim=-1), y.norm(dim=-1))


def test_wedge_constraints_flag_points_outside():
    sym = PlaneRotations(8)
    y = torch.tensor([[1.0, 0.0], [1.0, 0.5], [0.0, 1.0], [-1.0, 0.0], [1.0, -0.5]])
    assert sym.outside(y).tolist() == [False, True, True, True, True]
    # sectors tile the plane: every point's canonical image is inside the wedge
    x = torch.randn(1000, 2) * 5
    y = sym.act_inverse(x, sym.sector(x))
    assert (sym.domain_constraints(y) <= 1e-5).all()


def test_block_flips_sector_and_action():
    blocks = torch.tensor([[0, 1, 2], [0, 1, 2]])  # 3 site time-lines on a 2 x 3 field
    sym = BlockFlips(blocks)
    assert sym.num_elements == 8
    y = torch.rand(50, 2, 3) + 0.01  # all block sums positive: inside Omega
    u = torch.randint(0, 8, (50,))
    x = sym.act(y, u)
    assert torch.equal(sym.sector(x), u)
    torch.testing.assert_close(sym.act_inverse(x, u), y)
    bits = sym.bits(torch.tensor([5]))[0].tolist()
    assert bits == [1, 0, 1]
    flipped = sym.act(torch.ones(1, 2, 3), torch.tensor([5]))
    assert flipped[0, :, 0].eq(-1).all() and flipped[0, :, 1].eq(1).all()


def test_global_flip_domain_is_positive_magnetisation():
    sym = global_flip((4, 4))
    phi = torch.randn(100, 4, 4)
    m = phi.sum((1, 2))
    assert torch.equal(sym.outside(phi), m < 0)
    assert torch.equal(sym.sector(phi), (m < 0).long())


def test_penalty_is_zero_inside_and_bounded_outside():
    pen = BijectivityPenalty(1000.0, 100.0)
    lam = torch.tensor([[-1.0, -0.1], [0.01, -1.0], [5.0, 5.0]])
    v = pen(lam)
    assert v[0] == 0
    assert 500 < v[1] < 1000
    torch.testing.assert_close(v[2], torch.tensor(2000.0))
    with pytest.raises(ConfigError, match="penalty strength"):
        BijectivityPenalty(-1.0)


def test_modulation_probabilities_and_log_prob():
    mod = CategoricalModulation(5, learnable=True, logits=torch.tensor([0.0, 1, 2, -1, 0.5]))
    p = mod.probs()
    torch.testing.assert_close(p.sum(), torch.tensor(1.0))
    u = torch.tensor([0, 2, 4, 2])
    torch.testing.assert_close(mod.log_prob(u), p[u].log())
    torch.manual_seed(0)
    freq = torch.bincount(mod.sample(200_000), minlength=5).double() / 200_000
    assert (freq - p.double()).abs().max() < 0.005
    exact = CategoricalModulation(4, learnable=False)
    torch.testing.assert_close(exact.probs(), torch.full((4,), 0.25))
    assert not list(exact.parameters())
