"""Discrete symmetry groups acting on fields, with their fundamental domains.

A group {T_0 = id, T_1, ..., T_{K-1}} acts on fields of a fixed event shape. The fundamental
domain Omega is described by constraint functions lambda_c(y) (one column per constraint):
zero on the boundary, negative inside, positive outside; y is in Omega when all are <= 0.
The images T_u(Omega) are disjoint and cover the space up to measure zero, so every field x lies
in exactly one *sector* u, the element with T_u^{-1} x in Omega.

All actions here are orthogonal (rotations and sign flips), so log|det dT_u/dy| = 0.
"""

from __future__ import annotations

import math

import torch

from .validation import positive_int


class DiscreteSymmetry:
    """Interface of a finite group acting on fields of shape ``event_shape``."""

    event_shape: tuple[int, ...]
    num_elements: int
    name: str

    def element_names(self) -> list[str]:
        return [str(u) for u in range(self.num_elements)]

    def act(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """x = T_u(y), elementwise over the batch."""
        raise NotImplementedError

    def act_inverse(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """y = T_u^{-1}(x)."""
        raise NotImplementedError

    def sector(self, x: torch.Tensor) -> torch.Tensor:
        """The element u (int64) whose inverse maps x into Omega."""
        raise NotImplementedError

    def domain_constraints(self, y: torch.Tensor) -> torch.Tensor:
        """lambda(y) of shape (batch, constraints); all <= 0 inside Omega."""
        raise NotImplementedError

    def log_abs_det(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """log|det dT_u/dy|; zero for the orthogonal actions defined here."""
        return torch.zeros(y.shape[0], dtype=y.dtype, device=y.device)

    def outside(self, y: torch.Tensor) -> torch.Tensor:
        """Boolean mask of samples that violate the domain (bijectivity is lost there)."""
        lam = self.domain_constraints(y)
        if lam.shape[-1] == 0:
            return torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)
        return (lam > 0).any(dim=-1)


class PlaneRotations(DiscreteSymmetry):
    """Z_N acting on R^2 by rotations through 2 pi k / N.

    Omega is the wedge |arg y| < pi / N around the positive x1 axis. Its two edges give the
    constraints lambda_1 = -sin(a) y1 + cos(a) y2 and lambda_2 = -sin(a) y1 - cos(a) y2 with
    a = pi / N (signed distances to the edge lines, positive on the outer side). For N = 1 the
    domain is the whole plane and there is no constraint; for N = 2 both edges are the y2 axis.
    """

    def __init__(self, order: int):
        self.order = positive_int("symmetry order", order)
        self.num_elements = self.order
        self.event_shape = (2,)
        self.name = f"Z{self.order}" if self.order > 1 else "none"

    def element_names(self) -> list[str]:
        return [f"rot {360 * k / self.order:g}°" for k in range(self.order)]

    def _rotate(self, v: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(angle), torch.sin(angle)
        return torch.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1]], dim=-1)

    def _angle(self, u: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return u.to(like.dtype) * (2 * math.pi / self.order)

    def act(self, y, u):
        return self._rotate(y, self._angle(u, y))

    def act_inverse(self, x, u):
        return self._rotate(x, -self._angle(u, x))

    def sector(self, x):
        theta = torch.atan2(x[:, 1], x[:, 0])
        k = torch.round(theta * (self.order / (2 * math.pi))).long()
        return torch.remainder(k, self.order)

    def domain_constraints(self, y):
        if self.order == 1:
            return y.new_zeros(y.shape[0], 0)
        a = math.pi / self.order
        sa, ca = math.sin(a), math.cos(a)
        upper = -sa * y[:, 0] + ca * y[:, 1]
        lower = -sa * y[:, 0] - ca * y[:, 1]
        return torch.stack([upper, lower], dim=-1)


class BlockFlips(DiscreteSymmetry):
    """(Z2)^n: independent sign flips of n disjoint blocks of field components.

    ``blocks`` has the field's shape and gives each component its block index in [0, n).
    Element u is a bit pattern: bit j set flips block j. Omega: every block sum is >= 0,
    lambda_j(y) = -sum_{i in block j} y_i. With a single block covering the whole field this is
    the global Z2 flip phi -> -phi with Omega = {M >= 0}.
    """

    def __init__(self, blocks: torch.Tensor, name: str | None = None):
        blocks = torch.as_tensor(blocks, dtype=torch.long)
        n = int(blocks.max().item()) + 1
        if blocks.min() < 0 or set(blocks.unique().tolist()) != set(range(n)):
            raise ValueError("blocks must label every component with an index 0..n-1, all used")
        if n > 62:
            raise ValueError(f"at most 62 blocks can be flipped independently (got {n})")
        self.blocks = blocks
        self.num_blocks = n
        self.num_elements = 2**n
        self.event_shape = tuple(blocks.shape)
        self.name = name or (f"Z2^{n}" if n > 1 else "Z2")
        self._one_hot = torch.nn.functional.one_hot(blocks.reshape(-1), n).double()  # (D, n)
        self._bit_values = 2 ** torch.arange(n)

    def element_names(self) -> list[str]:
        return [format(u, f"0{self.num_blocks}b")[::-1] for u in range(self.num_elements)]

    def bits(self, u: torch.Tensor) -> torch.Tensor:
        """(batch, n) 0/1 tensor: which blocks element u flips."""
        return (u.unsqueeze(-1) >> torch.arange(self.num_blocks, device=u.device)) & 1

    def _signs(self, u: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        bits = self.bits(u).to(like.dtype)  # (batch, n)
        per_block = 1 - 2 * bits
        per_comp = per_block[:, self.blocks.to(like.device).reshape(-1)]
        return per_comp.reshape(like.shape)

    def act(self, y, u):
        return y * self._signs(u, y)

    def act_inverse(self, x, u):
        return x * self._signs(u, x)

    def block_sums(self, x: torch.Tensor) -> torch.Tensor:
        one_hot = self._one_hot.to(device=x.device, dtype=x.dtype)
        return x.reshape(x.shape[0], -1) @ one_hot

    def sector(self, x):
        negative = (self.block_sums(x) < 0).long()
        return (negative * self._bit_values.to(x.device)).sum(-1)

    def domain_constraints(self, y):
        return -self.block_sums(y)


def global_flip(event_shape: tuple[int, ...]) -> BlockFlips:
    """The global Z2 sign flip phi -> -phi; Omega = {sum of all components >= 0}."""
    return BlockFlips(torch.zeros(event_shape, dtype=torch.long), name="Z2")
