"""Hopping matrices: symmetry, coordination numbers, bipartiteness, validation of user input."""

import math

import pytest
import torch

from sesamo_lab.lattices import (
    build_lattice,
    chain,
    honeycomb,
    is_bipartite,
    ring,
    square,
    two_site,
    validate_hopping,
)
from sesamo_lab.validation import ConfigError


def coordination(k: torch.Tensor) -> list[int]:
    return (k != 0).sum(1).tolist()


@pytest.mark.parametrize(
    "k,expected,bonds",
    [
        (two_site(), [1, 1], 1),
        (chain(5), [1, 2, 2, 2, 1], 4),
        (ring(6), [2] * 6, 6),
        (square(3), [4] * 9, 18),
        (square(4), [4] * 16, 32),
        (honeycomb(3), [3] * 18, 27),
        (honeycomb(2), [3] * 8, 12),
    ],
)
def test_lattices_are_symmetric_with_the_right_coordination(k, expected, bonds):
    assert k.dtype == torch.float64
    assert torch.equal(k, k.T)
    assert torch.all(k.diagonal() == 0)
    assert coordination(k) == expected
    assert int((k != 0).sum()) == 2 * bonds


def test_honeycomb_torus_is_bipartite_by_parity_and_has_no_short_loops():
    k = honeycomb(3)
    a, b = torch.nonzero(k, as_tuple=True)
    assert torch.all((a % 2) != (b % 2))  # every bond joins sublattice A (even) and B (odd)
    adj = (k != 0).double()
    # smallest loop of the honeycomb lattice is the hexagon: no triangles or squares of bonds
    assert torch.trace(adj @ adj @ adj) == 0
    walks4 = torch.trace(adj @ adj @ adj @ adj)
    assert walks4 == 18 * (3 * 3 + 3 * 2)  # tree-like walks only: d^2 + d(d-1) per site


def test_bipartite_detection():
    assert is_bipartite(ring(4)) and is_bipartite(honeycomb(3)) and is_bipartite(square(4))
    assert not is_bipartite(ring(5)) and not is_bipartite(square(3))


def test_hopping_strength_scales_the_matrix():
    torch.testing.assert_close(build_lattice("ring", 5, 0.5), 0.5 * ring(5))
    assert math.isclose(float(build_lattice("2site", 2, 2.0)[0, 1]), 2.0)
    assert torch.equal(build_lattice("honeycomb", 18), honeycomb(3))
    assert torch.equal(build_lattice("square", 16), square(4))


@pytest.mark.parametrize(
    "kind,sites,hopping,fragment",
    [
        ("triangle", 3, 1.0, "lattice"),
        ("2site", 3, 1.0, "sites"),
        ("ring", 2, 1.0, "sites"),
        ("chain", 0, 1.0, "sites"),
        ("square", 10, 1.0, "square number"),
        ("honeycomb", 10, 1.0, r"2 L\^2"),
        ("ring", 4, -1.0, "hopping"),
        ("ring", 4, float("nan"), "hopping"),
    ],
)
def test_bad_lattice_requests(kind, sites, hopping, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build_lattice(kind, sites, hopping)


@pytest.mark.parametrize(
    "matrix,fragment",
    [
        ([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], "square"),
        ([[0.0, 1.0], [0.5, 0.0]], "symmetric"),
        ([[0.0, float("inf")], [float("inf"), 0.0]], "finite"),
        ([[0.0, float("nan")], [float("nan"), 0.0]], "finite"),
        ("abc", "matrix"),
        ([], "square"),
    ],
)
def test_user_matrix_validation(matrix, fragment):
    with pytest.raises(ConfigError, match=fragment):
        validate_hopping(matrix)


def test_valid_user_matrix_is_copied_as_float64():
    m = [[0, 2], [2, 0]]
    k = validate_hopping(m)
    assert k.dtype == torch.float64 and k[0, 1] == 2
