import os

import pytest
import torch

# Tests are sized for a 2-core CI machine; keep torch from oversubscribing it.
torch.set_num_threads(min(2, os.cpu_count() or 1))


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
