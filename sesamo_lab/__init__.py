"""sesamo-lab: SESaMo (symmetry-enforcing stochastic modulation) for normalizing flows."""

__version__ = "0.1.0"
