"""The Gaussian-mixture family: presets gmm-z8 (exact Z8) and gmm-z8-broken (tilted)."""

from __future__ import annotations

import math
from pathlib import Path

from ..flows import realnvp
from ..model_kinds import ModelSpec
from ..penalty import BijectivityPenalty
from ..plots import density_comparison_figure, save_figure, training_curves_figure
from ..presets import (
    BREAKING_OPTION,
    Family,
    Option,
    Preset,
    backbone_kwargs,
    register_family,
    register_preset,
)
from ..symmetry import PlaneRotations
from ..targets.gmm import GaussianMixture
from ..validation import ConfigError, choice, positive_int


def modulation_is_learned(params: dict, breaking: float) -> bool:
    """'learned' or 'exact' from the params; default: learned iff the symmetry is broken."""
    mode = params.get("modulation")
    if mode is None:
        return breaking != 0
    return choice("modulation", mode, ("exact", "learned")) == "learned"


class GaussianMixtureFamily(Family):
    name = "gmm"
    options = (
        Option("--modes", "modes", int, "number of mixture components N (>= 1)", "N"),
        Option("--radius", "radius", float, "radius R of the ring of modes (> 0)", "R"),
        Option("--sigma", "sigma", float, "width of each Gaussian (> 0)", "S"),
        BREAKING_OPTION,
        Option(
            "--group",
            "group",
            int,
            "order of the rotation group used by SESaMo (divides --modes; 1 = none)",
            "K",
        ),
    )

    def build_target(self, params: dict) -> GaussianMixture:
        return GaussianMixture(
            params["modes"], params["radius"], params["sigma"], params["breaking"]
        )

    def symmetry(self, target: GaussianMixture, params: dict) -> PlaneRotations:
        order = params.get("group") or target.modes
        order = positive_int("group", order)
        if target.modes % order:
            raise ConfigError(
                f"group Z{order} is not a symmetry of a {target.modes}-mode mixture; "
                f"--group must divide --modes ({target.modes})"
            )
        return PlaneRotations(order)

    def model_spec(self, target: GaussianMixture, params: dict) -> ModelSpec:
        kwargs = backbone_kwargs(params)
        return ModelSpec(
            event_shape=(2,),
            flow_factory=lambda: realnvp((2,), **kwargs),
            symmetry=self.symmetry(target, params),
            broken=modulation_is_learned(params, target.breaking),
            penalty=BijectivityPenalty(params["penalty_strength"], params["penalty_sharpness"]),
        )

    def write_figures(self, model, target, out_dir: Path, n: int, history=None) -> list[str]:
        sym = getattr(model, "symmetry", None) or target.symmetry()
        rays = (
            [math.pi * (2 * k + 1) / sym.order for k in range(sym.order)] if sym.order > 1 else []
        )
        x = model.sample(min(n, 200_000)).detach().double().cpu().numpy()
        extent = target.radius + 4 * target.sigma
        fig = density_comparison_figure(
            x,
            lambda p: -target.action(p.to(target.centres.device)) - target.log_z,
            extent,
            rays,
            title_model=f"{type(model).__name__} samples",
            title_target="exact target",
            suptitle=f"{target.modes}-Gaussian mixture, h = {target.breaking:g}",
        )
        names = [save_figure(fig, out_dir / "density.png")]
        if history is not None and history.step:
            names.append(
                save_figure(training_curves_figure(history, True), out_dir / "training.png")
            )
        return names


_MIXTURE = {
    "modes": 8,
    "radius": 12.0,
    "sigma": 1.0,
    "group": None,
    "modulation": None,
    "couplings": 6,
    "hidden": 32,
    "depth": 2,
    "penalty_strength": 1000.0,
    "penalty_sharpness": 100.0,
}

register_family(GaussianMixtureFamily())
register_preset(
    Preset(
        name="gmm-z8",
        family="gmm",
        description="8 Gaussians on a ring (R = 12, sigma = 1), exact Z8 symmetry",
        params={**_MIXTURE, "breaking": 0.0},
        steps=2000,
        batch_size=512,
        lr=2e-3,
    )
)
register_preset(
    Preset(
        name="gmm-z8-broken",
        family="gmm",
        description="8 Gaussians on a ring tilted by h = 0.05 (broken Z8): learned sector weights",
        params={**_MIXTURE, "breaking": 0.05},
        steps=2000,
        batch_size=512,
        lr=2e-3,
    )
)
