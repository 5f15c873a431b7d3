"""PIA, the proximal initialization attack (Kong et al. 2024; docs/science.md).

The noise is not drawn but taken from the model itself, eps_0 = eps_theta(x0, 0);
x_t = noise_to(x0, t, eps_0) is denoised with one query and compared with
eps_0: on members the model's noise estimate is self-consistent. The paper's
DDPM setting: t = 200 of 1000 and an l4 distance. Score = -distance.
"""

from __future__ import annotations

import torch

from benchmark.attacks.base import MembershipAttack, per_image_error
from benchmark.errors import ConfigError


class PIAAttack(MembershipAttack):
    name = "pia"
    version = "1"
    label = "PIA"
    description = "eps_theta(x0, 0) used as the noise, one query at t, l_p error (lower = member)"
    defaults = {"t": 0.2, "p": 4.0}

    def check_params(self) -> None:
        if not 0 < self.params["t"] < 1:
            raise ConfigError(f"PIA: t is a fraction in (0, 1), got {self.params['t']}")
        if self.params["p"] <= 0:
            raise ConfigError(f"PIA: the norm p must be positive, got {self.params['p']}")

    @property
    def queries_per_image(self) -> int:
        return 2

    def score_batch(self, family, estimate, x0, generator) -> torch.Tensor:
        eps0 = family.predict_eps(estimate, x0, family.noise.time_at(0.0))
        time = family.noise.time_at(self.params["t"])
        x_t = family.noise.noise_to(x0, time, eps0)
        p = float(self.params["p"])
        return -(per_image_error(family.predict_eps(estimate, x_t, time), eps0, p) ** (1 / p))
