"""Model families on the same data, side by side.

A latent model and a pixel model trained on the same images answer the same question
differently: the autoencoder's bottleneck may hide members or leak them itself. For
every dataset, N_train and mitigation measured on more than one family, this view
puts the families' headline figures in one table: the Carlini fraction, |q| and t*
of the fingerprint audit, the loss attack through the released weights, the
autoencoder attacked alone (latent families), FID against held-out images, and the
seconds spent training (the autoencoder's included) and sampling.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.fid import FID_TEST
from benchmark.measures.membership_scores import MIA_AUC, MIA_AUC_CI
from benchmark.measures.reproduction import Q
from benchmark.measures.tstar import TSTAR
from benchmark.record import DATASET, FAMILY, N_TRAIN, SAMPLE_SECONDS, TRAIN_SECONDS
from benchmark.report.groups import mitigation_label

AE_AUC, AE_AUC_CI = "autoencoder_mia_auc", "autoencoder_mia_auc_ci"  # metrics/autoencoder.py
AE_TRAIN_SECONDS = "autoencoder_train_seconds"
LOSS_AUC, LOSS_AUC_CI = MIA_AUC(attack="loss_weights"), MIA_AUC_CI(attack="loss_weights")

HEADERS = (
    "family", "Carlini ℓ2", "|q|", "t*", "loss AUC (weights)", "autoencoder AUC", "FID_test",
    "training s", "sampling s",
)  # fmt: skip


@dataclass(frozen=True)
class SameData:
    """One dataset x N_train x mitigation, and each family's row of figures (text)."""

    label: str
    rows: list[list[str]]


def _num(value, fmt: str) -> str:
    if value is None or isinstance(value, bool) or value != value:
        return "—"
    return fmt.format(value)


def _with_ci(record: dict, key: str, ci_key: str) -> str:
    value, ci = record.get(key), record.get(ci_key)
    if value is None:
        return "—"
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{value:.3f}"


def _training_seconds(record: dict) -> str:
    unet, ae = record.get(TRAIN_SECONDS), record.get(AE_TRAIN_SECONDS)
    if unet is None:
        return "—"
    if ae is None:
        return f"{unet:.0f}"
    return f"{unet + ae:.0f} ({ae:.0f} autoencoder)"


def row(record: dict[str, Any]) -> list[str]:
    return [
        str(record.get(FAMILY)),
        _num(record.get(CARLINI_L2), "{:.3f}"),
        _num(record.get(Q), "{:.0f}"),
        _num(record.get(TSTAR), "{:.2f}"),
        _with_ci(record, LOSS_AUC, LOSS_AUC_CI),
        _with_ci(record, AE_AUC, AE_AUC_CI),
        _num(record.get(FID_TEST), "{:.1f}"),
        _training_seconds(record),
        _num(record.get(SAMPLE_SECONDS), "{:.0f}"),
    ]


def same_data(records: list[dict[str, Any]]) -> list[SameData]:
    """The tables, one per dataset x N_train x mitigation that more than one family
    measured, families in name order."""
    by: OrderedDict[tuple, dict[str, dict]] = OrderedDict()
    for r in records:
        key = (str(r.get(DATASET)), r.get(N_TRAIN) or 0, mitigation_label(r))
        by.setdefault(key, {})[str(r.get(FAMILY))] = r
    out = []
    for (dataset, n_train, mitigation), families in sorted(by.items()):
        if len(families) < 2:
            continue
        rows = [row(families[f]) for f in sorted(families)]
        out.append(SameData(f"{dataset} · N_train = {n_train} · {mitigation}", rows))
    return out
