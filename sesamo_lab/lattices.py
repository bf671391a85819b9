"""Hopping matrices K for the Hubbard model (method.md 4.4), and validation of user matrices.

K[x, y] = kappa for nearest neighbours x ~ y and 0 elsewhere, so the one-body transfer matrix is
E = exp(delta * K). Every builder returns a float64 (N_x, N_x) tensor. Periodic lattices add the
wrap-around bonds; a bond that is generated twice (e.g. a ring of 2 sites) is counted once, so K
stays an adjacency matrix times kappa.

Site numbering (it matters, because the last site carries the global flip in the modulation and
the flow's coupling masks alternate even/odd sites):

* chain / ring: 0 .. n-1 along the line;
* square L x L: site = L * row + column;
* honeycomb L x L unit cells: site = 2 * (L * i + j) + s with sublattice s = 0 (A) or 1 (B), so
  even sites are sublattice A and odd sites are B. A(i, j) is bonded to B(i, j), B(i - 1, j) and
  B(i, j - 1), all indices mod L (a torus; every site has three neighbours for L >= 2).
"""

from __future__ import annotations

import math

import torch

from .validation import ConfigError, choice, positive_float, positive_int

LATTICES = ("2site", "chain", "ring", "square", "honeycomb")


def _from_bonds(n: int, bonds: list[tuple[int, int]], hopping: float) -> torch.Tensor:
    k = torch.zeros(n, n, dtype=torch.float64)
    for a, b in bonds:
        if a != b:
            k[a, b] = k[b, a] = hopping
    return k


def two_site(hopping: float = 1.0) -> torch.Tensor:
    """K = kappa [[0, 1], [1, 0]]: the 2-site model of the paper."""
    return chain(2, hopping)


def chain(n: int, hopping: float = 1.0) -> torch.Tensor:
    """Open chain of n >= 2 sites."""
    n = positive_int("sites", n)
    if n < 2:
        raise ConfigError(f"sites must be >= 2 for a chain (got {n})")
    return _from_bonds(n, [(i, i + 1) for i in range(n - 1)], hopping)


def ring(n: int, hopping: float = 1.0) -> torch.Tensor:
    """Periodic chain of n >= 3 sites (coordination 2)."""
    n = positive_int("sites", n)
    if n < 3:
        raise ConfigError(f"sites must be >= 3 for a ring (got {n}); use --lattice chain")
    return _from_bonds(n, [(i, (i + 1) % n) for i in range(n)], hopping)


def square(side: int, hopping: float = 1.0) -> torch.Tensor:
    """Periodic side x side square lattice, side >= 3 (coordination 4)."""
    side = positive_int("square side", side)
    if side < 3:
        raise ConfigError(f"a periodic square lattice needs side >= 3 (got {side}), sites >= 9")
    bonds = []
    for r in range(side):
        for c in range(side):
            s = side * r + c
            bonds.append((s, side * r + (c + 1) % side))
            bonds.append((s, side * ((r + 1) % side) + c))
    return _from_bonds(side * side, bonds, hopping)


def honeycomb(cells: int, hopping: float = 1.0) -> torch.Tensor:
    """Honeycomb torus of cells x cells unit cells (2 cells^2 sites, coordination 3).

    cells = 3 gives the 18-site lattice of the paper's large Hubbard example.
    """
    cells = positive_int("honeycomb cells", cells)
    if cells < 2:
        raise ConfigError(f"a honeycomb torus needs >= 2 x 2 unit cells (got {cells}), sites >= 8")

    def site(i: int, j: int, s: int) -> int:
        return 2 * (cells * (i % cells) + (j % cells)) + s

    bonds = []
    for i in range(cells):
        for j in range(cells):
            a = site(i, j, 0)
            bonds += [(a, site(i, j, 1)), (a, site(i - 1, j, 1)), (a, site(i, j - 1, 1))]
    return _from_bonds(2 * cells * cells, bonds, hopping)


def build_lattice(kind: str, sites: int, hopping: float = 1.0) -> torch.Tensor:
    """K for a named lattice with ``sites`` sites (square: a square number; honeycomb: 2 L^2)."""
    kind = choice("lattice", kind, LATTICES)
    sites = positive_int("sites", sites)
    hopping = positive_float("hopping", hopping)
    if kind == "2site":
        if sites != 2:
            raise ConfigError(f"lattice 2site has sites = 2 (got {sites}); use chain or ring")
        return two_site(hopping)
    if kind == "chain":
        return chain(sites, hopping)
    if kind == "ring":
        return ring(sites, hopping)
    if kind == "square":
        side = math.isqrt(sites)
        if side * side != sites:
            raise ConfigError(f"square lattice: sites must be a square number L^2 (got {sites})")
        return square(side, hopping)
    cells = math.isqrt(sites // 2)
    if sites % 2 or 2 * cells * cells != sites:
        raise ConfigError(f"honeycomb lattice: sites must be 2 L^2 (8, 18, 32, ...) (got {sites})")
    return honeycomb(cells, hopping)


def validate_hopping(matrix: object, name: str = "hopping matrix") -> torch.Tensor:
    """A user hopping matrix as float64: square, at least 1 x 1, symmetric and finite."""
    try:
        k = torch.as_tensor(matrix, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name} must be a square matrix of numbers") from None
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < 1:
        raise ConfigError(f"{name} must be square, N_x x N_x (got shape {tuple(k.shape)})")
    if not torch.isfinite(k).all():
        raise ConfigError(f"{name} must be finite (it contains inf or nan)")
    if not torch.allclose(k, k.T, rtol=1e-12, atol=1e-12):
        raise ConfigError(f"{name} must be symmetric, K = K^T (hopping is Hermitian)")
    return k.clone()


def is_bipartite(k: torch.Tensor) -> bool:
    """True when the bond graph is 2-colourable; then det M[phi,+1] det M[phi,-1] >= 0 always."""
    n = k.shape[0]
    colour = [-1] * n
    adj = (k != 0).tolist()
    for start in range(n):
        if colour[start] >= 0:
            continue
        colour[start] = 0
        stack = [start]
        while stack:
            a = stack.pop()
            for b in range(n):
                if adj[a][b] and a != b:
                    if colour[b] < 0:
                        colour[b] = 1 - colour[a]
                        stack.append(b)
                    elif colour[b] == colour[a]:
                        return False
    return True
