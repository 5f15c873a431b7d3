"""SecMI-stat (Duan et al. 2023, "Are diffusion models vulnerable to membership
inference attacks?"; docs/science.md).

The image is carried deterministically to t_sec by DDIM inversion steps of
size k (phi), taken one step further to t_sec + k, and brought back by one
deterministic denoising step (psi). The "t-error"
||psi(phi(x~_t, t), t + k) - x~_t||^2 is small where the model's posterior is
sharp, i.e. on members. The paper's DDPM setting: t_sec = 100, k = 10 of 1000
steps; here as fractions 0.1 and 0.01. Score = -t-error.
"""

from __future__ import annotations

import torch

from benchmark.attacks.base import MembershipAttack, per_image_error
from benchmark.errors import ConfigError


def deterministic_step(family, estimate, x, time, next_time):
    """DDIM's deterministic move from ``time`` to ``next_time`` (either direction)."""
    eps = family.predict_eps(estimate, x, time)
    return family.noise.noise_to(family.noise.predict_x0(x, time, eps), next_time, eps)


class SecMIAttack(MembershipAttack):
    name = "secmi"
    version = "1"
    label = "SecMI-stat"
    description = (
        "error of a deterministic DDIM inversion/denoising round trip at t_sec (lower = member)"
    )
    defaults = {"t_sec": 0.1, "interval": 0.01}
    quick_params = {"interval": 0.05}

    def check_params(self) -> None:
        t_sec, k = self.params["t_sec"], self.params["interval"]
        if not 0 < k <= t_sec < 1 or t_sec + k >= 1:
            raise ConfigError(
                f"SecMI: need 0 < interval <= t_sec and t_sec + interval < 1, got t_sec={t_sec}, "
                f"interval={k}"
            )
        ratio = t_sec / k
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"SecMI: t_sec={t_sec} must be a multiple of interval={k}")

    @property
    def _steps(self) -> int:
        return round(self.params["t_sec"] / self.params["interval"])

    @property
    def queries_per_image(self) -> int:
        return self._steps + 2

    def score_batch(self, family, estimate, x0, generator) -> torch.Tensor:
        k = self.params["interval"]
        grid = [family.noise.time_at(i * k) for i in range(self._steps + 1)]
        x = x0
        for time, nxt in zip(grid[:-1], grid[1:], strict=True):  # x~_t by inversion
            x = deterministic_step(family, estimate, x, time, nxt)
        t_sec, t_next = grid[-1], family.noise.time_at(self.params["t_sec"] + k)
        further = deterministic_step(family, estimate, x, t_sec, t_next)
        back = deterministic_step(family, estimate, further, t_next, t_sec)
        return -per_image_error(back, x)
