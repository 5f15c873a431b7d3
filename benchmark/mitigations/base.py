"""The mitigation interface (docs/science.md, mitigations).

A mitigation either acts inside a family's sampler through the guidance hook
(it sees x_t, t and eps_theta and returns the eps it wants used; CPSample), wraps
sampling as a whole (``generate``; rejection sampling), or changes how the model
is trained (``train_config`` names it in the ``TrainConfig``, so the model is
cached under its parameters, and ``training_hook`` wraps the shared training
loop; DP-SGD). ``none`` is the
identity. Whatever it needs (a classifier, the feature extractor) it builds in
``prepare`` from the ``MitigationContext``; what it wants on the leaderboard
(how often it acted, what it cost) it returns from ``metrics``. A third-party
mitigation subclasses ``Mitigation`` in one file and registers it under the
``memobench.mitigations`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.attacks.threat import check_threat_model
from benchmark.cache import Cache
from benchmark.config import SamplerConfig, TrainConfig
from benchmark.data.base import ImageDataset
from benchmark.errors import ConfigError
from benchmark.models.base import Guidance, SampleResult, TrainedModel
from benchmark.models.training import TrainingHook


@dataclass
class MitigationContext:
    """What a case gives its mitigation to prepare with.

    Attributes:
        data: the case's members and held-out images.
        cache: where trained helpers (classifiers) are cached; ``None``: not cached.
        features: the replication feature extractor of the dataset, or a function that
            builds it (built on first use: read it through ``feature_extractor()``).
        device, progress, seed: as for the rest of the case.
    """

    data: ImageDataset
    cache: Cache | None = None
    features: nn.Module | Callable[[], nn.Module] | None = None
    device: torch.device | str = "cpu"
    progress: bool = False
    seed: int = 0

    def feature_extractor(self) -> nn.Module | None:
        if self.features is not None and not isinstance(self.features, nn.Module):
            self.features = self.features()
        return self.features


class Mitigation:
    """Base class of mitigation plugins; the default is the identity.

    Class attributes:
        defaults: parameters and their default values; others are refused.
        suite_settings: the parameter sets the smoke suite runs this mitigation with.
        quick_params: parameters that make ``prepare`` fast (the contract case uses them).
        addresses: the threat models (``benchmark.attacks.threat``) the mitigation claims
            to address; every case is attacked under ``weights`` whatever it claims.
        uses: the record keys of the measurements the mitigation uses internally (a
            rejection threshold is the replication metric's): the leaderboard marks those
            cells as circular and does not rank by them.
    """

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "1"
    in_suites: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {}
    suite_settings: ClassVar[list[dict[str, Any]]] = [{}]
    quick_params: ClassVar[dict[str, Any]] = {}
    addresses: ClassVar[tuple[str, ...]] = ()
    uses: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            takes = f"takes {sorted(self.defaults)}" if self.defaults else "takes no parameters"
            raise ConfigError(f"mitigation {self.name!r} has no parameter(s) {unknown}; it {takes}")
        self.params = {**self.defaults, **params}
        for threat in self.addresses:
            check_threat_model(threat, f"mitigation {self.name!r}'s addresses")
        self.check_params()

    def check_params(self) -> None:
        """Raise ``ConfigError`` naming a parameter whose value is out of range."""

    def train_config(self, train: TrainConfig) -> TrainConfig:
        """The training a case with this mitigation needs. A training-time mitigation
        returns ``train`` with ``mitigation`` set to itself (and whatever else it changes);
        the default trains as the case says."""
        return train

    def training_hook(self, train: TrainConfig, n_train: int) -> TrainingHook | None:
        """How the training loop changes (``models.training.TrainingHook``); ``None``: it
        does not. Called in the training process with the final ``TrainConfig``."""
        return None

    @property
    def changes_training(self) -> bool:
        return self.train_config(TrainConfig()) != TrainConfig()

    def prepare(self, model: TrainedModel, context: MitigationContext | None = None) -> None:
        """Train or load whatever the mitigation needs (e.g. a classifier)."""

    def guidance(self) -> Guidance | None:
        return None

    def generate(
        self, model: TrainedModel, seeds, sampler: SamplerConfig, **kwargs: Any
    ) -> SampleResult:
        return model.generate(seeds, sampler, guidance=self.guidance(), **kwargs)

    def metrics(self) -> dict[str, Any]:
        """What the mitigation did on the last ``generate`` (recorded as ``mitigation_*``)."""
        return {}
