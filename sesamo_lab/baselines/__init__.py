"""Baselines that SESaMo is compared with (method.md section 5).

* plain RealNVP: ``models.FlowSampler`` (model kind "realnvp");
* canonicalization: ``canonical.Canonicalized`` (model kind "canonical");
* a variational mixture of flows: ``vmonf.VMoNF`` (model kind "vmonf").

All share ``models.SamplingModel`` and are trained by the same reverse-KL loop.
"""

from .canonical import Canonicalized, build_canonical
from .vmonf import VMoNF, build_vmonf

__all__ = ["Canonicalized", "VMoNF", "build_canonical", "build_vmonf"]
