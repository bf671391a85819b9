"""Sample-quality metrics (method.md section 6).

All estimators work on log-weights log w = -S(x) - log q(x) and use log-sum-exp, so they are
safe for the large actions of lattice targets.
"""

from __future__ import annotations

import math

import torch

from .targets.base import Target, gaussian_log_prob


def ess(log_w: torch.Tensor) -> float:
    """Normalised Kish effective sample size from x_i ~ q, in (0, 1].

    ESS / N = exp(2 logsumexp(log w) - logsumexp(2 log w)) / N. Blind to modes q never visits.
    Non-finite weights count as zero weight.
    """
    log_w = log_w.detach().double().flatten()
    log_w = torch.where(torch.isfinite(log_w), log_w, torch.full_like(log_w, -math.inf))
    if not torch.isfinite(log_w).any():
        return 0.0
    n = log_w.numel()
    val = 2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)
    return float(val.exp() / n)


def forward_ess(log_w_target: torch.Tensor) -> float:
    """ESS estimated from exact target samples x_i ~ p, sensitive to dropped modes.

    With unnormalised weights w = exp(-S) / q:  ESS / N = 1 / (E_p[w] E_p[1/w])
    = N^2 / (sum w_i * sum 1/w_i)  (Nicoli et al., arXiv 2302.14082).
    """
    lw = log_w_target.detach().double().flatten()
    n = lw.numel()
    val = 2 * math.log(n) - torch.logsumexp(lw, 0) - torch.logsumexp(-lw, 0)
    return float(val.exp())


def free_energy(log_q: torch.Tensor, action: torch.Tensor) -> float:
    """E_q[log q + S]: the training loss, an upper bound on -log Z."""
    return float((log_q + action).detach().double().mean())


def reverse_kl(log_q: torch.Tensor, action: torch.Tensor, log_z: float | None) -> float | None:
    """KL(q || p) = E_q[log q + S] + log Z, or None where log Z is unknown."""
    if log_z is None:
        return None
    return free_energy(log_q, action) + log_z


def sector_frequencies(u: torch.Tensor, num_sectors: int) -> torch.Tensor:
    """Fraction of samples in each sector."""
    counts = torch.bincount(u.flatten().cpu(), minlength=num_sectors).double()
    return counts / max(1, u.numel())


@torch.no_grad()
def density_self_consistency(
    model, target: Target, n: int = 100_000, scale: float | None = None, chunk: int = 20_000
) -> tuple[float, float]:
    """Estimate int q(x) dx = E_{x~r}[q(x)/r(x)] with r = N(0, scale^2 I) covering q.

    Returns (mean, standard error). A correct, normalised log q gives 1 within errors (a little
    less by the mass that the flow puts outside Omega); a wrong Jacobian, a wrong log p_b term
    or a bijectivity violation shows up as a clear deviation.
    """
    scale = target.reference_scale() if scale is None else scale
    vals = []
    left = n
    while left > 0:
        m = min(chunk, left)
        x = scale * torch.randn((m, *model.event_shape), dtype=model.dtype, device=model.device)
        log_ratio = model.log_prob(x).double() - gaussian_log_prob(x.double(), scale)
        vals.append(torch.where(torch.isfinite(log_ratio), log_ratio.exp(), 0.0))
        left -= m
    r = torch.cat(vals)
    return float(r.mean()), float(r.std() / math.sqrt(r.numel()))


@torch.no_grad()
def evaluate(model, target: Target, n: int = 50_000, chunk: int = 10_000) -> dict:
    """All metrics that apply to this model and target, as a JSON-ready dict.

    Keys: ess, free_energy, kl (None without exact log Z), nll and forward_ess (None without
    exact target samples), outside_domain_fraction (None without a domain), sector_probs
    (model frequencies, learned p_b if any, exact target masses if known), n_samples.
    """
    model.eval()
    log_q, act, outside, sectors = [], [], [], []
    # Report sectors of the model's own group where it has one (e.g. Z4 modulation on a Z8
    # mixture), so model frequencies, learned p_b and exact masses line up element by element.
    symmetry = getattr(model, "symmetry", None) or target.symmetry()
    left = n
    while left > 0:
        m = min(chunk, left)
        d = model.draw(m)
        log_q.append(d.log_q.double())
        act.append(target.action(d.x).double())
        if d.outside is not None:
            outside.append(d.outside)
        if symmetry is not None:
            sectors.append(symmetry.sector(d.x))
        left -= m
    log_q_all, act_all = torch.cat(log_q), torch.cat(act)
    log_w = -act_all - log_q_all
    out: dict = {
        "n_samples": n,
        "ess": ess(log_w),
        "free_energy": free_energy(log_q_all, act_all),
        "kl": reverse_kl(log_q_all, act_all, target.log_z),
        "nll": None,
        "forward_ess": None,
        "outside_domain_fraction": float(torch.cat(outside).double().mean()) if outside else None,
        "nonfinite_fraction": float((~torch.isfinite(log_w)).double().mean()),
    }
    if target.can_sample:
        xs = target.sample(n).to(dtype=model.dtype, device=model.device)
        lq = torch.cat([model.log_prob(c).double() for c in xs.split(chunk)])
        out["nll"] = float(-lq.mean())
        out["forward_ess"] = forward_ess(-target.action(xs).double() - lq)
    if symmetry is not None:
        exact = target.sector_masses(symmetry)
        learned = model.learned_sector_probs()
        out["sector_probs"] = {
            "names": symmetry.element_names() if symmetry.num_elements <= 64 else None,
            "model": sector_frequencies(torch.cat(sectors), symmetry.num_elements).tolist()
            if symmetry.num_elements <= 4096
            else None,
            "learned": learned.double().cpu().tolist()
            if learned is not None and learned.numel() <= 4096
            else None,
            "target": exact.tolist() if exact is not None else None,
        }
    return out
