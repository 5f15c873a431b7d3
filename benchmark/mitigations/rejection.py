"""Nearest-neighbour rejection sampling, the baseline CPSample has to beat (docs/science.md).

Draw samples, reject each whose nearest training image in the replication
feature space is more similar than a threshold, redraw for the rejected ones
until N_gen are accepted or the budget (``budget`` x N_gen draws) is spent.
The threshold is ``tau`` when given, else calibrated on held-out images like
the replication metric: the ``quantile`` of held-out images' nearest-training
similarity, so a fresh image of the distribution is rejected 1% of the time.
The model itself is untouched: t* and the attacks see the plain model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmark.attacks.threat import SAMPLES_ONLY
from benchmark.errors import ConfigError
from benchmark.measures.feature_replication import (
    CARLINI_L2_FEATURES,
    REPLICATION_FRACTION,
    REPLICATION_FRACTION_HELDOUT,
    SIMILARITY_MEAN,
    heldout_threshold,
    nearest_cosine,
)
from benchmark.measures.features import extract
from benchmark.mitigations.base import Mitigation, MitigationContext, Prepared
from benchmark.models.base import SampleResult, TrainedModel

REDRAW_SEED_STRIDE = 10_000_019  # round r draws seeds + r * this: never a case's own seeds


@dataclass(frozen=True)
class RejectionParams:
    """tau: the similarity threshold (``None``: calibrated at the held-out ``quantile``);
    budget: draws per wanted sample."""

    tau: float | None = None
    quantile: float = 0.99
    budget: int = 10

    def __post_init__(self) -> None:
        if self.tau is not None and not -1 <= self.tau <= 1:
            raise ConfigError(f"rejection: tau is a cosine similarity in [-1, 1], got {self.tau}")
        if not 0 < self.quantile < 1:
            raise ConfigError(f"rejection: quantile must be in (0, 1), got {self.quantile}")
        if self.budget < 1:
            raise ConfigError(
                f"rejection: budget (draws per wanted sample) must be an integer >= 1, got "
                f"{self.budget}"
            )


@dataclass(frozen=True)
class Filter(Prepared):
    """What rejection sampling filters with: the feature extractor, the training images'
    features and the similarity threshold."""

    extractor: nn.Module | None = None
    train_features: torch.Tensor | None = None
    threshold: float = 1.0


class RejectionSampling(Mitigation):
    name = "rejection"
    version = "1"
    Params = RejectionParams
    # The suites draw at most 4 x N_gen. At budget 10 the 64-digit smoke models needed
    # 5.0 (ddim) and 8.6 (subvp) draws per sample before all 1024 were accepted, in 31
    # and 57 rounds: 109 s and 200 s of sampling on 2 cores, the suite's slowest cases.
    # At 4 a slot never accepted keeps its least similar draw, and the record says so
    # (mitigation_budget_exhausted, mitigation_accepted_fraction): the cost of the
    # baseline stays in its row.
    suite_settings = [{"budget": 4}]
    # It filters the released samples only, and by the replication metric's own feature
    # space and held-out-calibrated threshold: that metric scores it as 0 by construction.
    addresses = (SAMPLES_ONLY,)
    uses = (
        REPLICATION_FRACTION,
        REPLICATION_FRACTION_HELDOUT,
        SIMILARITY_MEAN,
        CARLINI_L2_FEATURES,
    )

    def prepare(self, model: TrainedModel, context: MitigationContext | None = None) -> Filter:
        extractor = None if context is None else context.feature_extractor()
        if extractor is None:
            raise ConfigError(
                "rejection sampling needs the replication feature extractor: call "
                "prepare(model, MitigationContext(data=..., features=extractor))"
            )
        train_features = extract(extractor, context.data.train)
        if self.params.tau is not None:
            threshold = float(self.params.tau)
        else:
            held = extract(extractor, context.data.heldout)
            threshold, _ = heldout_threshold(held, train_features, self.params.quantile)
        return Filter(extractor=extractor, train_features=train_features, threshold=threshold)

    def generate(
        self, model: TrainedModel, prepared: Prepared, seeds, sampler, **kwargs: Any
    ) -> SampleResult:
        if not isinstance(prepared, Filter) or prepared.extractor is None:
            raise ConfigError(
                "rejection.generate() takes what its prepare() returned (the feature "
                "extractor and threshold): call prepare(model, context) first"
            )
        extractor, train_features = prepared.extractor, prepared.train_features
        budget = self.params.budget
        seeds = torch.as_tensor(seeds, dtype=torch.long)
        n = seeds.shape[0]
        start = time.perf_counter()
        images = torch.empty(0)
        accepted = torch.zeros(n, dtype=torch.bool)
        best_sim = torch.full((n,), float("inf"))
        out_seeds = seeds.clone()
        drawn, rounds, nfe, reused_seconds = 0, 0, 0, 0.0
        while not accepted.all() and drawn < budget * n:
            todo = (~accepted).nonzero().flatten()
            todo = todo[: budget * n - drawn]
            draw_seeds = seeds[todo] + rounds * REDRAW_SEED_STRIDE
            res = model.generate(draw_seeds, sampler, **kwargs)
            if res.reused:  # round 0 is the plain case's own draw: charge what it cost
                reused_seconds += res.seconds
            if images.numel() == 0:
                images = torch.empty((n, *res.images.shape[1:]))
            sim, _ = nearest_cosine(extract(extractor, res.images), train_features)
            # keep the least similar draw so far for every slot (used if the budget runs out)
            better = sim < best_sim[todo]
            images[todo[better]] = res.images[better]
            out_seeds[todo[better]] = draw_seeds[better]
            best_sim[todo[better]] = sim[better]
            accepted[todo] |= sim <= prepared.threshold
            drawn += todo.numel()
            rounds += 1
            nfe = res.nfe
        seconds = time.perf_counter() - start + reused_seconds
        record = {
            "threshold": prepared.threshold,
            "draws": drawn,
            "rounds": rounds,
            "acceptance_rate": int(accepted.sum()) / max(drawn, 1),
            "accepted_fraction": float(accepted.float().mean()),
            "budget_exhausted": bool(not accepted.all()),
            "draws_per_sample": drawn / n,
        }
        # network evaluations per delivered image, the redraws included
        return SampleResult(
            images,
            out_seeds,
            round(nfe * drawn / n),
            seconds,
            mitigation={**prepared.stats, **record},
        )
