"""Comparisons on the same base model, the leaderboard's main view.

A model trained on 1024 images is not a mitigation of one trained on 64: the cases
are grouped by base model (family, dataset, N_train and the setup it was trained
from, so a training-time mitigation such as DP-SGD, which trains weights of its
own, is compared with the plain model it replaces and labelled as such), and
within a group every mitigation is compared with ``none``: its change in leakage
under the threat model the reader picks (two-sided: the attack's advantage
|AUC - 0.5|, so an attack pushed below chance, AUC 0.1, counts as the leak it is),
in Carlini fraction, |q| and FID against held-out images, each with an interval
where one can be had, and its cost in sampling and training time. The
privacy-utility plot and its Pareto front are drawn per group and per threat model,
and a short "which to choose" paragraph is written from the figures.

A mitigation whose samples no longer resemble the data (FID_test more than
``UTILITY_FLOOR`` times ``none``'s: noise, blobs) is marked "utility destroyed":
it is never said to lower the leak and never on the Pareto front, however little
its attacks find, for a generator of pure noise leaks nothing and is useless.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from benchmark.attacks.threat import DENOISER_API, SAMPLES_ONLY, THREAT_MODELS, WEIGHTS
from benchmark.measures.auc_interval import advantage
from benchmark.measures.carlini_l2 import CARLINI_L2, CARLINI_L2_FLAGGED
from benchmark.measures.fid import FID_TEST
from benchmark.measures.membership_scores import MIA_AUC, MIA_AUC_CI, MIA_SCORES, MIA_SETS
from benchmark.measures.paired import (
    advantage_change,
    share_change_paired,
    share_change_unpaired,
)
from benchmark.measures.reproduction import Q_FLAGGED, Q
from benchmark.record import (
    BASE_MODEL,
    CASE_ID,
    DATASET,
    FAMILY,
    MITIGATION,
    MITIGATION_PARAMS,
    MODEL_KEY,
    N_GEN,
    N_TRAIN,
    SAMPLE_SECONDS,
    SEEDS,
    TRAIN_SECONDS,
    TRAIN_STEPS,
)
from benchmark.report.plots import group_privacy_utility, pareto_front

# the leakage figure of each threat model, an attack's advantage |AUC - 0.5| (lower =
# safer): the loss attack through the raw weights and through the deployed denoiser,
# the nearest-sample attack on the samples
PRIVACY = {
    WEIGHTS: ("loss_weights", "loss-attack advantage |AUC − 0.5| (released weights)"),
    DENOISER_API: ("loss_api", "loss-attack advantage |AUC − 0.5| (deployed denoiser)"),
    SAMPLES_ONLY: ("nearest_samples", "nearest-sample advantage |AUC − 0.5| (released samples)"),
}


# a mitigation's FID_test beyond this multiple of `none`'s on the same base model: its
# samples are no longer the data's (DP-SGD's blobs on 64 digits: 138 against 9.9)
UTILITY_FLOOR = 3.0


def _num(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def base_key(record: dict[str, Any]) -> tuple:
    """The base model a case was measured on: its family, data, N_train and the setup it
    was trained from (a training-time mitigation's case shares `none`'s; results written
    before ``base_model`` was recorded fall back to the weights)."""
    weights = record.get(BASE_MODEL) or record.get(MODEL_KEY) or record.get(TRAIN_STEPS)
    return (record.get(FAMILY), record.get(DATASET), record.get(N_TRAIN), str(weights))


def retrained(rec: dict, ref: dict | None) -> bool:
    """``rec``'s mitigation trained its own model (DP-SGD): other weights than ``ref``'s."""
    return ref is not None and rec.get(MODEL_KEY) not in (None, ref.get(MODEL_KEY))


def base_label(record: dict[str, Any]) -> str:
    return f"{record.get(FAMILY)} · {record.get(DATASET)} · N_train = {record.get(N_TRAIN)}"


def mitigation_label(record: dict[str, Any]) -> str:
    params = record.get(MITIGATION_PARAMS) or {}
    inner = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{record.get(MITIGATION)}" + (f" ({inner})" if inner else "")


@dataclass(frozen=True)
class Delta:
    """A change against ``none``: value, a 95% interval of the change, and whether the
    interval is paired (the two cases share the images or sample seeds measured)."""

    delta: float
    lo: float | None = None
    hi: float | None = None
    paired: bool = False

    def text(self, fmt: str = "{:+.3f}") -> str:
        shown = fmt.format(self.delta)
        if self.lo is None or self.hi is None:
            return shown
        return f"{shown} [{fmt.format(self.lo)}, {fmt.format(self.hi)}]" + (
            " paired" if self.paired else ""
        )

    @property
    def significant(self) -> bool:
        return self.lo is not None and self.hi is not None and (self.lo > 0 or self.hi < 0)


def leakage(rec: dict, run: str) -> float | None:
    """Attack ``run``'s advantage |AUC - 0.5| on a case, or ``None`` if not measured."""
    auc = _num(rec.get(MIA_AUC(attack=run)))
    return None if auc is None else advantage(auc)


def _interval(rec: dict, key) -> tuple[float, float] | None:
    ci = rec.get(key)
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return None
    lo, hi = (_num(v) for v in ci)
    return None if lo is None or hi is None else (lo, hi)


def _scores(rec: dict, run: str) -> tuple[list, list] | None:
    s = rec.get(MIA_SCORES(attack=run))
    if not isinstance(s, dict) or not s.get("members") or not s.get("nonmembers"):
        return None
    return s["members"], s["nonmembers"]


def leakage_delta(rec: dict, ref: dict, run: str) -> Delta | None:
    """Change in an attack's advantage |AUC - 0.5| against ``ref``, with a 95% interval
    from each one's own (asymmetric) interval: paired by the two AUCs' DeLong correlation
    where both cases scored the same images (same ``mia_sets`` digest, scores recorded),
    independent otherwise (``benchmark.measures.paired.advantage_change``)."""
    a, b = _num(rec.get(MIA_AUC(attack=run))), _num(ref.get(MIA_AUC(attack=run)))
    if a is None or b is None:
        return None
    ci_a, ci_b = _interval(rec, MIA_AUC_CI(attack=run)), _interval(ref, MIA_AUC_CI(attack=run))
    if ci_a is None or ci_b is None:
        return Delta(advantage(a) - advantage(b))
    scores = None
    sa, sb = _scores(rec, run), _scores(ref, run)
    same = rec.get(MIA_SETS) is not None and rec.get(MIA_SETS) == ref.get(MIA_SETS)
    if same and sa is not None and sb is not None and len(sa[0]) == len(sb[0]):
        scores = (sa, sb)
    d, lo, hi, paired = advantage_change(a, ci_a, b, ci_b, scores)
    return Delta(d, lo, hi, paired)


def same_samples(rec: dict, ref: dict) -> bool:
    """Both cases drew the same number of samples from the same seeds (sample i of one
    started from sample i's noise in the other)."""
    seeds, ref_seeds = rec.get(SEEDS), ref.get(SEEDS)
    return (
        isinstance(seeds, dict)
        and isinstance(ref_seeds, dict)
        and "case" in seeds
        and seeds.get("case") == ref_seeds.get("case")
        and _num(rec.get(N_GEN)) is not None
        and rec.get(N_GEN) == ref.get(N_GEN)
    )


def paired_flags(rec: dict, ref: dict, key: str, counts: tuple) -> tuple[list, list] | None:
    """Both cases' per-sample verdicts (``key``: the indices of the flagged samples) where
    they drew the same samples and each list holds as many as its case counted
    (``counts``), or None: then nothing pairs them."""
    f1, f2 = rec.get(key), ref.get(key)
    if not (isinstance(f1, list) and isinstance(f2, list) and same_samples(rec, ref)):
        return None
    return (f1, f2) if (len(f1), len(f2)) == tuple(counts) else None


def share_delta(rec: dict, ref: dict, count, flagged, scale: float = 1.0) -> Delta | None:
    """Change in the share of samples ``count`` gives (a record -> how many samples it
    flagged) against ``ref``, times ``scale``: Newcombe's paired interval on the
    per-sample verdicts (``flagged``) where both drew the same samples, his independent
    one (from Wilson's intervals) otherwise."""
    n1, n2 = _num(rec.get(N_GEN)), _num(ref.get(N_GEN))
    k1, k2 = count(rec), count(ref)
    if None in (k1, k2, n1, n2) or not n1 or not n2:
        return None
    k1, k2, n1, n2 = int(k1), int(k2), int(n1), int(n2)
    flags = paired_flags(rec, ref, flagged, (k1, k2))
    if flags is not None:
        d, lo, hi = share_change_paired(*flags, n1)
    else:
        d, lo, hi = share_change_unpaired(k1, n1, k2, n2)
    return Delta(d * scale, lo * scale, hi * scale, flags is not None)


def ratio(a, b) -> float | None:
    a, b = _num(a), _num(b)
    return None if a is None or not b else a / b


@dataclass
class Comparison:
    """One mitigation against ``none`` of the same base model."""

    case_id: str
    label: str
    privacy: dict[str, Delta | None] = field(default_factory=dict)
    carlini: Delta | None = None
    q: Delta | None = None
    fid: float | None = None
    sample_ratio: float | None = None
    train_ratio: float | None = None
    utility_destroyed: bool = False


def compare(rec: dict, ref: dict) -> Comparison:
    label = mitigation_label(rec) + (
        " (training-time: its own model)" if retrained(rec, ref) else ""
    )
    out = Comparison(str(rec.get(CASE_ID)), label)
    out.privacy = {t: leakage_delta(rec, ref, PRIVACY[t][0]) for t in THREAT_MODELS}
    out.carlini = share_delta(rec, ref, _carlini_count, CARLINI_L2_FLAGGED)
    # |q| as a count of the mitigated case's N_gen: the change in share, times its N_gen
    n_gen = _num(rec.get(N_GEN))
    out.q = share_delta(rec, ref, lambda r: _num(r.get(Q)), Q_FLAGGED, n_gen) if n_gen else None
    fid, fid_ref = _num(rec.get(FID_TEST)), _num(ref.get(FID_TEST))
    out.fid = None if fid is None or fid_ref is None else fid - fid_ref
    out.utility_destroyed = destroys_utility(rec, ref)
    out.sample_ratio = ratio(
        _per_sample(rec), _per_sample(ref)
    )  # per generated image: cases may differ in N_gen
    out.train_ratio = ratio(rec.get(TRAIN_SECONDS), ref.get(TRAIN_SECONDS))
    return out


def _carlini_count(rec: dict) -> int | None:
    """How many samples Carlini's criterion flagged (the record keeps their share)."""
    share, n = _num(rec.get(CARLINI_L2)), _num(rec.get(N_GEN))
    return None if share is None or not n else round(share * n)


def destroys_utility(rec: dict, ref: dict | None) -> bool:
    """FID_test of ``rec`` beyond ``UTILITY_FLOOR`` times that of ``ref`` (its `none`)."""
    fid = _num(rec.get(FID_TEST))
    fid_ref = None if ref is None else _num(ref.get(FID_TEST))
    return fid is not None and fid_ref is not None and fid > UTILITY_FLOOR * max(fid_ref, 1e-9)


def _per_sample(rec: dict) -> float | None:
    s, n = _num(rec.get(SAMPLE_SECONDS)), _num(rec.get(N_GEN))
    return None if s is None or not n else s / n


def front_of(records: list[dict], threat: str) -> list[dict]:
    """The records no other record of the group beats on both FID_test and leakage
    (those whose utility is destroyed left out)."""
    run = PRIVACY[threat][0]
    ref = next((r for r in records if r.get(MITIGATION) == "none"), None)
    have = [
        r
        for r in records
        if _num(r.get(FID_TEST)) is not None
        and leakage(r, run) is not None
        and not destroys_utility(r, ref)
    ]
    pts = [(float(r[FID_TEST]), leakage(r, run)) for r in have]
    return [have[i] for i in pareto_front(pts)]


def summary(
    ref: dict | None,
    comparisons: list[Comparison],
    records: list[dict],
    threat: str,
    front: list[str],
) -> str:
    """'Which to choose' for one group under one threat model, from its figures and its
    Pareto front (``front_of``'s records, by label)."""
    run, what = PRIVACY[threat]
    if ref is None:
        return (
            f"No `none` case of this base model: nothing to compare the mitigations with. "
            f"On the front ({what} against FID_test): {', '.join(front) or 'none measured'}."
        )
    base = leakage(ref, run)
    if not comparisons:
        shown = "not measured" if base is None else f"{base:.3f}"
        return f"Only `none` was measured on this base model ({what}: {shown})."
    helps = [
        c
        for c in comparisons
        if c.privacy.get(threat)
        and c.privacy[threat].significant
        and c.privacy[threat].delta < 0
        and not c.utility_destroyed
    ]
    parts = []
    if base is not None:
        parts.append(f"Without a mitigation, the {what} is {base:.3f}.")
    if not helps:
        kept = [c.label for c in comparisons if not c.utility_destroyed]  # said below
        parts.append(
            "Under this threat model no mitigation lowers it beyond its interval"
            + (f": {', '.join(kept)} leave the leak as it is." if kept else ".")
        )
    else:
        for c in sorted(helps, key=lambda c: c.privacy[threat].delta):
            cost = []
            if c.fid is not None:
                cost.append(f"FID_test {c.fid:+.1f}")
            if c.sample_ratio is not None:
                cost.append(f"{c.sample_ratio:.1f}× sampling time")
            if c.train_ratio is not None and abs(c.train_ratio - 1) > 0.05:
                cost.append(f"{c.train_ratio:.1f}× training time")
            parts.append(
                f"{c.label} lowers it by {-c.privacy[threat].delta:.3f} "
                f"({c.privacy[threat].text()})" + (f" at {', '.join(cost)}." if cost else ".")
            )
        others = [c.label for c in comparisons if c not in helps and not c.utility_destroyed]
        if others:
            parts.append(f"{', '.join(others)} do not lower it beyond the interval.")
    destroyed = [c for c in comparisons if c.utility_destroyed]
    if destroyed:
        parts.append(
            f"{', '.join(c.label for c in destroyed)} destroy{'s' if len(destroyed) == 1 else ''} "
            f"utility (FID_test more than {UTILITY_FLOOR:g}× `none`'s): not ranked as private, "
            f"whatever the attacks find."
        )
    for r in records:
        ci = r.get(MIA_AUC_CI(attack=run))
        upper = _num(ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None
        auc = _num(r.get(MIA_AUC(attack=run)))
        if upper is not None and auc is not None and upper < 0.5:
            parts.append(
                f"Under {mitigation_label(r)} the attack scores members below chance (AUC "
                f"{auc:.3f}, interval up to {upper:.3f}): an "
                f"attacker who flips the score's sign finds members as well, so it counts as "
                f"leakage."
            )
    parts.append(f"On the Pareto front: {', '.join(front) or 'none measured'}.")
    return " ".join(parts)


@dataclass
class Group:
    label: str
    records: list[dict]
    reference: dict | None
    comparisons: list[Comparison]
    plots: dict[str, str | None]
    fronts: dict[str, list[str]]
    summaries: dict[str, str]


def compare_groups(records: list[dict]) -> list[Group]:
    """The records grouped by base model, each with its comparisons, plots and summaries."""
    by: OrderedDict[tuple, list[dict]] = OrderedDict()
    for r in records:
        by.setdefault(base_key(r), []).append(r)
    out = []
    order = sorted(by, key=lambda k: tuple(str(v) for v in k[:2]) + (k[2] or 0, k[3]))
    for members in (by[k] for k in order):
        ref = next((r for r in members if r.get(MITIGATION) == "none"), None)
        comps = [compare(r, ref) for r in members if r is not ref] if ref is not None else []
        plots, fronts, texts = {}, {}, {}
        for threat in THREAT_MODELS:
            run = PRIVACY[threat][0]
            front = front_of(members, threat)
            plots[threat] = group_privacy_utility(
                members,
                lambda r, run=run: leakage(r, run),
                PRIVACY[threat][1],
                mitigation_label,
                front=front,
            )
            fronts[threat] = [mitigation_label(r) for r in front]
            texts[threat] = summary(ref, comps, members, threat, fronts[threat])
        out.append(Group(base_label(members[0]), members, ref, comps, plots, fronts, texts))
    return out
