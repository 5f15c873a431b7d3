"""Carlini et al. (2023)'s l2 replication fraction as a case metric (the criterion and
its nearest-neighbour search: ``benchmark/measures/carlini_l2.py``)."""

from __future__ import annotations

from typing import Any

from benchmark.display import Column
from benchmark.measures.carlini_l2 import CARLINI_L2, CARLINI_L2_FLAGGED, CarliniL2
from benchmark.metrics.base import AuditInputs, CaseMetric


class Carlini(CaseMetric):
    """The Carlini ℓ2 replication fraction of the case's samples against its training set."""

    name = "carlini_l2"
    order = 10
    fields = (CARLINI_L2, CARLINI_L2_FLAGGED)

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        metric = CarliniL2(inputs.data.train, search_device=inputs.device)
        metric.update(inputs.samples.images)
        return {CARLINI_L2: float(metric.compute()), CARLINI_L2_FLAGGED: metric.flagged()}

    @classmethod
    def columns(cls):

        return [
            Column(CARLINI_L2, CarliniL2.label, CarliniL2.description, False, "{:.3f}"),
        ]
