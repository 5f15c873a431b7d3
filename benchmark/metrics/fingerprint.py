"""The fingerprint audit as a case metric: |q| on the case's samples and t* (docs/science.md).

Runs where the case's data carries a synthetic anatomic fingerprint SAF(x_p);
C_SAF and C_ID come from the session (trained once per split, cached).
"""

from __future__ import annotations

from typing import Any

import torch

from benchmark.config import CaseConfig
from benchmark.data.base import ImageDataset
from benchmark.detectors.augment import sampler_artefacts
from benchmark.detectors.detector import Detector, DetectorAccuracyError
from benchmark.display import Column, Figure, new_figure, to_data_uri
from benchmark.measures.carlini_l2 import nearest_two
from benchmark.measures.reproduction import (
    Q_EXPECTED,
    Q_P_VALUE,
    Q_POWER,
    Q_POWER_N_GEN,
    REPRODUCTION_FIELDS,
    Q,
    confirmed_by_nearest,
    count_reproductions,
)
from benchmark.measures.tstar import (
    TSTAR,
    TSTAR_CURVE,
    TSTAR_EXACT,
    TSTAR_FIELDS,
    TSTAR_M,
    TSTAR_UPPER,
    default_grid,
    tstar,
    tstar_window,
)
from benchmark.metrics.base import AuditInputs, CaseMetric
from benchmark.models.base import Guidance, SampleResult, TrainedModel
from benchmark.record import METRIC_SKIPPED, Field, Fields

Q_NN_CONFIRMED = Field(
    "q_nn_confirmed", "int", "flagged samples whose nearest training image is SAF(x_p)"
)
C_SAF_ENTRY = Fields("c_saf_{entry}", "any", "C_SAF's held-out figures, e.g. accuracy")
C_ID_ENTRY = Fields("c_id_{entry}", "any", "C_ID's held-out figures, e.g. accuracy")


def fingerprint_audit(
    case: CaseConfig,
    model: TrainedModel,
    data: ImageDataset,
    samples: SampleResult,
    c_saf: Detector,
    c_id: Detector,
    guidance: Guidance | None,
    min_accuracy: float = 0.95,
    strategy: str = "adaptive",
    m: int = 16,
    levels: list[float] | None = None,
    scan_budget: float = 1.0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    batch_size: int = 2048,
) -> dict[str, Any]:
    """|q| on the case's samples and t* of the model (docs/science.md, the fingerprint).

    Raises:
        ConfigError: no SAF in the data, or detectors trained on other data.
        DetectorAccuracyError: a detector is below ``min_accuracy`` on held-out data.
    """
    for det in (c_saf, c_id):
        det.check_for(data)
        det.require_accuracy(min_accuracy)
    saf_pos, id_pos = c_saf.predict(samples.images), c_id.predict(samples.images)
    reproductions = count_reproductions(saf_pos, id_pos, data.n_train)
    not_xp = nearest_not_xp(samples.images, data, device)
    both = saf_pos & id_pos
    reproductions.false_positives = {
        **heldout_false_positives(c_saf, c_id, data),
        # the detectors on what the model made that is not x_p (guided samples under a
        # mitigation): what they see, not only what held-out images look like
        "generated": (int((both & not_xp).sum()), int(not_xp.sum())),
    }

    def is_hit(images: torch.Tensor) -> torch.Tensor:
        return c_saf.predict(images) & c_id.predict(images)

    curve = tstar(
        model,
        data,
        is_hit,
        case.sampler,
        strategy=strategy,
        m=m,
        levels=levels,
        seed=case.seed,
        guidance=guidance,
        device=device,
        progress=progress,
        max_batch=batch_size,
        scan_budget=scan_budget,
        window=tstar_window(device),
    )
    record = {**reproductions.as_record(), **curve.as_record()}
    record[Q_NN_CONFIRMED] = confirmed_by_nearest(
        samples.images, reproductions.flagged, data.train, data.saf.index
    )
    record.update(detector_record(c_saf, c_id))
    return record


def detector_record(c_saf: Detector, c_id: Detector) -> dict[str, Any]:
    """The detectors' held-out figures as record entries (``c_saf_accuracy``, ...)."""
    return {
        entry(entry=key): value
        for entry, det in ((C_SAF_ENTRY, c_saf), (C_ID_ENTRY, c_id))
        for key, value in det.metrics.items()
    }


def heldout_false_positives(
    c_saf: Detector, c_id: Detector, data: ImageDataset
) -> dict[str, tuple[int, int]]:
    """Held-out images, plain and with every sampler artefact, that both detectors flag:
    what |q| counts on a model that never copies x_p. {source: (hits, images)}."""
    held = data.heldout
    rough = sampler_artefacts(held, torch.Generator().manual_seed(7), p=1.0)
    return {
        name: (int((c_saf.predict(x) & c_id.predict(x)).sum()), int(x.shape[0]))
        for name, x in (("heldout", held), ("heldout_artefacts", rough))
    }


# samples whose nearest training image is looked up for the detectors' false-positive
# rate on generated images (all of them in the smoke tier; a paper case's first 4096)
FALSE_POSITIVE_SAMPLES = 4096


def nearest_not_xp(
    images: torch.Tensor, data: ImageDataset, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(N,) mask over the samples: their nearest training image (pixels) is not SAF(x_p),
    searched on ``device``. Beyond ``FALSE_POSITIVE_SAMPLES`` False (not looked up)."""
    n = min(images.shape[0], FALSE_POSITIVE_SAMPLES)
    not_xp = torch.zeros(images.shape[0], dtype=torch.bool)
    if n:
        _, _, nearest = nearest_two(images[:n], data.train, device=device)
        not_xp[:n] = nearest.cpu() != data.saf.index
    return not_xp


WITHHELD = "withheld (the case page says why)"


def _withheld(record: dict) -> bool:
    return isinstance(record.get(METRIC_SKIPPED(metric=Fingerprint.name)), str)


def _show_q(record: dict) -> str | None:
    if record.get(Q) is None and _withheld(record):
        return WITHHELD
    if record.get(Q) is None or record.get(Q_EXPECTED) is None or record.get(Q_P_VALUE) is None:
        return None
    text = f"{record[Q]} / {record[Q_EXPECTED]:.1f} (p={record[Q_P_VALUE]:.2g})"
    confirmed = record.get(Q_NN_CONFIRMED)
    if record[Q] > 0 and confirmed is not None:
        text += f", {confirmed} by nearest"
    power = record.get(Q_POWER)
    if power is not None and power < 0.8:
        need = record.get(Q_POWER_N_GEN)  # None, or NaN once the leaderboard's table holds it
        text += f"; too few samples to conclude (power {power:.2f}" + (
            f", N_gen {int(need)} reaches 0.8)"
            if need and need == need
            else ", no N_gen reaches 0.8)"
        )
    return text


def _show_tstar(record: dict) -> str | None:
    t = record.get(TSTAR)
    if t is None:
        return WITHHELD if _withheld(record) else None
    text = "none" if t < 0 else f"{t:.2f}"
    upper = record.get(TSTAR_UPPER)
    if record.get(TSTAR_EXACT) is False and upper is not None:
        # a capped scan: t* was bisected below the levels it cleared
        text = f"{'none found' if t < 0 else 'at least ' + text}, at most {upper:.2f}"
    return text


def draw_tstar_curve(record: dict[str, Any]) -> str | None:
    """q_M(t) against t with t* marked (the fingerprint paper's Fig. 6)."""
    curve = record.get(TSTAR_CURVE)
    if not isinstance(curve, dict) or not curve.get("t"):
        return None
    pts = [
        (t, q)
        for t, q in zip(curve["t"], curve.get("q") or [], strict=False)
        if q is not None  # levels the adaptive search did not visit
    ]
    if not pts:
        return None
    fig, ax = new_figure()
    ts, qs = zip(*sorted(pts), strict=True)
    ax.plot(ts, qs, "o-", ms=3)
    tstar = record.get(TSTAR)
    if tstar is not None and tstar >= 0:
        ax.axvline(tstar, color="C3", ls="--", label=f"t* = {tstar:.2f}")
        ax.legend(loc="upper right")
    ax.set(xlabel="t (diffusion fraction)", ylabel="q_M(t)", xlim=(0, 1), ylim=(-0.02, 1.02))
    ax.set_title(f"fingerprint recovered from x_t, M = {record.get(TSTAR_M, '?')}")
    return to_data_uri(fig)


class Fingerprint(CaseMetric):
    """|q| (reproductions of x_p both detectors flag) and t* (docs/science.md, the fingerprint)."""

    name = "fingerprint"
    order = 20
    fields = (
        *REPRODUCTION_FIELDS,
        *TSTAR_FIELDS,
        Q_NN_CONFIRMED,
        C_SAF_ENTRY,
        C_ID_ENTRY,
    )

    def skip_reason(self, inputs: AuditInputs) -> str | None:
        if inputs.data.saf is None:
            return "the case's data carries no fingerprint (DataConfig(saf=True) adds one)"
        return None

    def compute(self, inputs: AuditInputs) -> dict[str, Any]:
        context = inputs.context
        c_saf, c_id = context.detectors(inputs.case.data)
        counts = context.counts
        try:
            for det in (c_saf, c_id):
                det.require_accuracy(context.detector_config.min_accuracy)
        except DetectorAccuracyError as err:
            # |q| and t* would be verdicts of a detector that cannot tell: withheld, with
            # the detectors' figures; every other metric of the case is still measured
            return {METRIC_SKIPPED(metric=self.name): str(err), **detector_record(c_saf, c_id)}
        return fingerprint_audit(
            inputs.case,
            inputs.model,
            inputs.data,
            inputs.samples,
            c_saf,
            c_id,
            inputs.guidance(),
            min_accuracy=context.detector_config.min_accuracy,
            strategy=counts.tstar_strategy,
            m=counts.tstar_m,
            levels=default_grid(counts.tstar_step),
            scan_budget=counts.tstar_scan_budget,
            device=inputs.device,
            progress=inputs.progress,
            batch_size=inputs.batch_size(2048),
        )

    @classmethod
    def columns(cls):

        return [
            Column(
                Q,
                "|q|",
                "samples flagged by both C_SAF and C_ID as the fingerprinted image "
                "(E|q| = N_gen/N_train for a model that copies each image equally); "
                "'k by nearest': how many of them have SAF(x_p) as nearest training image "
                "in pixels; 'too few samples to conclude': the test's power against a model "
                "that never copies x_p is below 0.8 at this N_gen",
                False,
                "{:d}",
                _show_q,
            ),
            Column(
                TSTAR,
                "t*",
                "largest diffusion level t from which the model's own sampler still returns "
                "SAF(x_p) (none: from no level); 'at least .., at most ..' where the run "
                "capped the exact scan (its t* is then bracketed, not exact)",
                False,
                "{:.2f}",
                _show_tstar,
            ),
        ]

    @classmethod
    def figures(cls) -> list[Figure]:

        return [Figure("q_M(t) and t*", draw_tstar_curve, "the fingerprint paper's Fig. 6")]
