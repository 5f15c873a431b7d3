"""The loss attack (Matsumoto et al. 2023; docs/science.md).

A member is denoised better than a non-member: the per-image training loss
||eps - eps_theta(noise_to(x0, t, eps), t)||^2, averaged over ``draws`` noise
draws at each of ``times`` (fractions of the diffusion), is lower for members.
Score = -loss.
"""

from __future__ import annotations

import torch

from benchmark.attacks.base import MembershipAttack, per_image_error
from benchmark.errors import ConfigError


class LossAttack(MembershipAttack):
    name = "loss"
    version = "1"
    label = "loss attack"
    description = "per-image denoising loss at a few t, averaged over noise draws (lower = member)"
    # t = 100..300 of 1000 separates members best on DDPM (Matsumoto et al., Fig. 2);
    # 3 x 3 queries keep the cost at the SecMI attack's.
    defaults = {"times": (0.1, 0.2, 0.3), "draws": 3}
    quick_params = {"times": (0.1,), "draws": 1}

    def check_params(self) -> None:
        times, draws = self.params["times"], self.params["draws"]
        if not times or not all(0 < t < 1 for t in times):
            raise ConfigError(f"loss attack: times are fractions in (0, 1), got {times}")
        if int(draws) != draws or draws < 1:
            raise ConfigError(f"loss attack: draws must be a positive integer, got {draws}")
        self.params["times"] = tuple(float(t) for t in times)

    @property
    def queries_per_image(self) -> int:
        return len(self.params["times"]) * int(self.params["draws"])

    def score_batch(self, family, estimate, x0, generator) -> torch.Tensor:
        loss = torch.zeros(x0.shape[0], device=x0.device)
        for frac in self.params["times"]:
            time = family.noise.time_at(frac)
            for _ in range(int(self.params["draws"])):
                eps = torch.randn(x0.shape, generator=generator, device=x0.device)
                x_t = family.noise.noise_to(x0, time, eps)
                loss += per_image_error(family.predict_eps(estimate, x_t, time), eps)
        return -loss / self.queries_per_image
