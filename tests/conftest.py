import os

import pytest
import torch

# The models in the tests are small: intra-op threads buy nothing on tensors this size, and
# on a loaded 2-core machine (CI runs a server and a kernel beside pytest in some tests)
# spinning OpenMP threads slowed training 10x. One thread keeps the suite's time predictable.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def f64():
    """Run a test with float64 as the default dtype, then restore it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def perturb(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> None:
    """Add random noise to every parameter so a flow is far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def jacobian_logdet(fn, z, free=None):
    """log|det dfn/dz| per sample from the dense autograd Jacobian.

    ``free`` (a 0/1 mask of the field) restricts it to the entries a map actually moves, for
    flows that pin some components.
    """
    out = []
    for zi in z:
        jac = torch.autograd.functional.jacobian(
            lambda v: fn(v.unsqueeze(0))[0][0], zi, vectorize=True
        )
        d = zi.numel()
        jac = jac.reshape(d, d)
        if free is not None:
            idx = free.reshape(-1).nonzero().squeeze(-1)
            jac = jac[idx][:, idx]
        out.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(out)


def assert_bijection(flow, z, rtol: float, inverse_rtol: float | None = None) -> None:
    """forward's log-det equals the autograd Jacobian's, and inverse undoes forward exactly."""
    x, ld = flow(z)
    torch.testing.assert_close(ld, jacobian_logdet(flow, z), rtol=rtol, atol=rtol)
    z_back, ld_inv = flow.inverse(x)
    tol = inverse_rtol if inverse_rtol is not None else rtol
    torch.testing.assert_close(z_back, z, rtol=tol, atol=tol)
    torch.testing.assert_close(ld_inv, -ld, rtol=rtol, atol=rtol)
