"""The contract of a case metric: what every audited case measures, and how it is shown.

A metric plugin subclasses ``CaseMetric`` and registers under the
``memobench.metrics`` entry-point group, as memobench's own metrics do. The
audit (``benchmark.audit.run_case``) then computes it on every case, its
``columns()`` join the leaderboard and its ``figures()`` the case pages, in the
spirit of torchmetrics' ``Metric`` (which computes, and says whether higher is
better and how to plot itself).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import nn

from benchmark import registry
from benchmark.display import Column, Figure
from benchmark.errors import UnknownNameError
from benchmark.record import AUDIT, SUITE, Declared

if TYPE_CHECKING:
    from benchmark.config import CaseConfig, DataConfig, DetectorConfig, ModelConfig, TrainConfig
    from benchmark.data.base import ImageDataset
    from benchmark.detectors.detector import Detector
    from benchmark.mitigations.base import Mitigation, Prepared
    from benchmark.models.base import Guidance, SampleResult, TrainedModel
    from benchmark.tiers import AuditCounts


class AuditContext(Protocol):
    """What a metric may read of the run besides its case: the run's settings and the
    things built once per run (detectors, feature extractors, members' features).
    ``benchmark.session.Session`` is one; a test can pass any object with these."""

    device: torch.device
    progress: bool
    counts: AuditCounts
    detector_config: DetectorConfig

    def batch_size(self, model: TrainedModel, default: int) -> int:
        """Images per network call of ``model``."""

    def dataset(self, cfg: DataConfig) -> ImageDataset:
        """The split ``cfg`` (loaded once)."""

    def model(self, model: ModelConfig, train: TrainConfig, data: DataConfig) -> TrainedModel:
        """``model`` trained with ``train`` on ``data`` (trained once, then cached): a
        shadow model, for the attacks that learn on one."""

    def fast(self, model: TrainedModel) -> TrainedModel:
        """``model`` as the run's speed switches call it (precision, compilation), as the
        case's own model is called: a shadow is scored the way its target is."""

    def detectors(self, data: DataConfig) -> tuple[Detector, Detector]:
        """(C_SAF, C_ID) of the split ``data``."""

    def extractor(self, data: DataConfig) -> nn.Module:
        """The feature extractor of FID and replication for ``data``'s dataset."""

    def train_features(self, data: DataConfig) -> torch.Tensor:
        """The extractor's features of the split's members."""

    def member_features(
        self, data: DataConfig, space: str, extractor: Callable[[], nn.Module]
    ) -> torch.Tensor:
        """The split's members in the feature space ``space`` (built by ``extractor``)."""


@dataclass
class AuditInputs:
    """What a metric measures: one case's model, data, samples and mitigation.

    Attributes:
        record: what the metrics before this one recorded (read it, do not change it).
        context: the run's settings and built resources (``AuditContext``).
        prepared: what the mitigation prepared for sampling (its guidance for t* and the
            ``denoiser-api`` attacks: ``guidance()``).
    """

    case: CaseConfig
    model: TrainedModel
    data: ImageDataset
    samples: SampleResult
    mitigation: Mitigation
    context: AuditContext
    record: dict[str, Any] = field(default_factory=dict)
    prepared: Prepared | None = None

    def guidance(self) -> Guidance | None:
        """The mitigation's guidance as the case deploys it (``None``: it has none)."""
        if self.prepared is None:
            raise ValueError(
                "AuditInputs.prepared is unset: pass what the case's mitigation.prepare() "
                "returned, so t* and the attacks query the denoiser as it is deployed"
            )
        return self.prepared.guidance()

    @property
    def device(self) -> torch.device:
        return self.context.device

    @property
    def progress(self) -> bool:
        return self.context.progress

    def batch_size(self, default: int) -> int:
        """Images per network call for this case's model."""
        return self.context.batch_size(self.model, default)


class CaseMetric(ABC):
    """Base class of metric plugins.

    Class attributes:
        name: registry name.
        version: bump when a change alters the figures (it keys stored audits).
        order: metrics run by ascending ``order`` (a later one reads earlier records).
        fields: the record entries ``compute`` writes (``benchmark.record.Field``, or
            ``Fields`` for keys named after a plugin); the audit refuses any other entry
            and any value of another type.
    """

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "1"
    order: ClassVar[int] = 100
    fields: ClassVar[tuple[Declared, ...]] = ()

    def skip_reason(self, inputs: AuditInputs) -> str | None:
        """Why this case cannot be measured (recorded as ``<name>_skipped``), or None."""
        return None

    @abstractmethod
    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        """The metric's record entries for one case, each a declared field (``fields``)."""

    @classmethod
    def columns(cls) -> list[Column]:
        """The leaderboard columns this metric fills."""
        return []

    @classmethod
    def figures(cls) -> list[Figure]:
        """The case-page figures this metric's record entries draw."""
        return []


def metric_classes() -> list[type[CaseMetric]]:
    """Every registered metric class, in the order they run."""
    classes = [registry.metrics.get(n) for n in registry.metrics.names()]
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, CaseMetric)):
            raise UnknownNameError(
                f"metric plugin {cls!r} is not a benchmark.metrics.base.CaseMetric subclass; "
                f"subclass it (docs/plugins.md, 'A metric') or uninstall the plugin"
            )
    return sorted(classes, key=lambda c: (c.order, c.name))


def case_metrics() -> list[CaseMetric]:
    """Every registered metric, instantiated, in the order they run."""
    return [cls() for cls in metric_classes()]


def schema() -> list[Declared]:
    """Every declared key of a record: the audit's, each registered metric's, the suites'."""
    return [*AUDIT, *(f for cls in metric_classes() for f in cls.fields), *SUITE]
