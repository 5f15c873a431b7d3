"""The mitigation interface (docs/science.md, mitigations; docs/plugins.md, a mitigation).

A mitigation is an object built once per case from its parameters, a frozen
dataclass (``Params``) whose names and types are checked when the mitigation is
built and whose ranges its ``__post_init__`` checks. The object itself holds no
state: ``prepare(model, context)`` builds whatever sampling needs (a classifier,
the training images, the feature extractor) from the ``MitigationContext`` and
returns it as a ``Prepared``:

- ``hook``: the guidance, acting inside a family's sampler. It sees x_t, t and
  eps_theta and returns the eps it wants used (CPSample, AMG), or ``(eps_hat,
  fire)`` with ``fire`` the (B,) mask of the images it acted on, so the record
  says how often it acted;
- ``stats``: what the mitigation knows before sampling (DP-SGD's accountant,
  CPSample's classifier), recorded as ``mitigation_*``.

``generate(model, prepared, seeds, sampler)`` draws the case's samples (a
mitigation may wrap sampling as a whole there: rejection sampling); what the
mitigation did on that draw comes back with the samples
(``SampleResult.mitigation``), counted afresh on every call, so t* and the
attacks calling the same guidance again change nothing in it. A mitigation that
changes how the model is trained names itself in the ``TrainConfig``
(``train_config``, so the model is cached under its parameters) and wraps the
shared training loop (``training_hook``; DP-SGD). ``none`` is the identity. A
third-party mitigation subclasses ``Mitigation`` in one file and registers it
under the ``memobench.mitigations`` entry-point group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from benchmark.attacks.threat import check_threat_model
from benchmark.cache import Cache
from benchmark.config import MitigationConfig, SamplerConfig, TrainConfig
from benchmark.data.base import ImageDataset
from benchmark.mitigations.guided import GuidanceHook, GuidanceLog, logged
from benchmark.models.base import Guidance, SampleResult, TrainedModel
from benchmark.models.training import TrainingHook
from benchmark.params import NoParams, build_params, param_defaults


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


@dataclass(frozen=True)
class Prepared:
    """What a prepared mitigation gives sampling (``Mitigation.prepare``).

    Attributes:
        hook: ``hook(x_t, t, eps) -> eps_hat`` or ``-> (eps_hat, fire)``; ``None``: the
            mitigation does not act inside the sampler.
        stats: what the mitigation knows before sampling, recorded as ``mitigation_*``.
    """

    hook: GuidanceHook | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)

    def guidance(self, log: GuidanceLog | None = None) -> Guidance | None:
        """The hook as samplers call it (eps_hat only), counting into ``log`` where it
        acted (a fresh log, dropped, when none is given: t* and the attacks)."""
        if self.hook is None:
            return None
        return logged(self.hook, GuidanceLog() if log is None else log)


class Mitigation:
    """Base class of mitigation plugins; the default is the identity.

    Class attributes:
        Params: a frozen dataclass of the parameters and their defaults; its
            ``__post_init__`` raises ``ConfigError`` for a value out of range.
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
    Params: ClassVar[type] = NoParams
    suite_settings: ClassVar[list[dict[str, Any]]] = [{}]
    quick_params: ClassVar[dict[str, Any]] = {}
    addresses: ClassVar[tuple[str, ...]] = ()
    uses: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        for threat in self.addresses:
            check_threat_model(threat, f"mitigation {self.name!r}'s addresses")
        self.params = build_params(self.Params, params, f"mitigation {self.name!r}")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The parameters and their default values."""
        return param_defaults(cls.Params)

    @property
    def config(self) -> MitigationConfig:
        """The mitigation and all its parameters, defaults included (a cache key's part)."""
        return MitigationConfig(self.name, dataclasses.asdict(self.params))

    def train_config(self, train: TrainConfig) -> TrainConfig:
        """The training a case with this mitigation needs. A training-time mitigation
        returns ``train`` with ``mitigation`` set to its ``config`` (and whatever else it
        changes); the default trains as the case says."""
        return train

    def training_hook(self, train: TrainConfig, n_train: int) -> TrainingHook | None:
        """How the training loop changes (``models.training.TrainingHook``); ``None``: it
        does not. Called in the training process with the final ``TrainConfig``."""
        return None

    @property
    def changes_training(self) -> bool:
        return self.train_config(TrainConfig()) != TrainConfig()

    def prepare(self, model: TrainedModel, context: MitigationContext | None = None) -> Prepared:
        """Build what sampling needs (a classifier, the training images) and return it."""
        return Prepared()

    def generate(
        self, model: TrainedModel, prepared: Prepared, seeds, sampler: SamplerConfig, **kwargs: Any
    ) -> SampleResult:
        """One image per seed through ``prepared``; the result's ``mitigation`` holds
        ``prepared.stats`` and, for a hook, how often it acted on this draw."""
        if not isinstance(prepared, Prepared):
            raise TypeError(
                f"mitigation {self.name!r}: generate() takes what prepare() returned (a "
                f"Prepared), got {type(prepared).__name__}"
            )
        if prepared.hook is None:
            result = model.generate(seeds, sampler, **kwargs)
            return dataclasses.replace(result, mitigation=dict(prepared.stats))
        log = GuidanceLog()
        guide = prepared.guidance(log)
        seeds = torch.as_tensor(seeds, dtype=torch.long)
        batch = int(kwargs.pop("batch_size", 256))
        parts = []
        for part in seeds.split(batch):
            log.start_batch(part.shape[0])
            parts.append(model.generate(part, sampler, guidance=guide, batch_size=batch, **kwargs))
            log.end_batch()
        return SampleResult(
            torch.cat([p.images for p in parts]),
            seeds,
            parts[0].nfe,
            sum(p.seconds for p in parts),
            mitigation={**log.as_record(), **prepared.stats},
        )
