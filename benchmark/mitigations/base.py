"""The mitigation interface (SPEC section 6).

A mitigation either acts inside a family's sampler through the guidance hook
(it sees x_t, t and eps_theta and returns the eps it wants used) or wraps
sampling as a whole (``generate``). ``none`` is the identity.
"""

from __future__ import annotations

from typing import Any, ClassVar

from benchmark.config import SamplerConfig
from benchmark.models.base import Guidance, SampleResult, TrainedModel


class Mitigation:
    """Base class of mitigation plugins; the default is the identity."""

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "1"
    in_suites: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        if params:
            raise TypeError(f"mitigation {self.name!r} takes no parameters, got {sorted(params)}")
        self.params = params

    def prepare(self, model: TrainedModel, context: Any = None) -> None:
        """Train or load whatever the mitigation needs (e.g. a classifier)."""

    def guidance(self) -> Guidance | None:
        return None

    def generate(
        self, model: TrainedModel, seeds, sampler: SamplerConfig, **kwargs: Any
    ) -> SampleResult:
        return model.generate(seeds, sampler, guidance=self.guidance(), **kwargs)
