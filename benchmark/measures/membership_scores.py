"""Scoring a membership-inference attack (docs/science.md).

An attack gives every image a score, higher meaning "more likely a training
image". Over members (label 1) and non-members (label 0) of equal count this
module computes the ROC curve, its AUC, the TPR at low FPR (1% and 0.1%, the
operating points Carlini et al. 2022 argue for), a 95% interval of the AUC
that stays honest at small n and AUC 1 (Newcombe's score interval,
``auc_interval.py``), stratified bootstrap 95% intervals of the TPRs, and
Welch's two-sample t-test on the per-image scores (CPSample's Table 3 reports
this statistic on the losses).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats

from benchmark.measures.auc_interval import advantage, auc_interval
from benchmark.measures.bootstrap import bootstrap_ci
from benchmark.record import Field, Fields

# one of each per registered attack (``MIA_AUC(attack="loss")`` is ``mia_loss_auc``)
MIA_AUC = Fields("mia_{attack}_auc", "float", "membership-inference ROC AUC (0.5 = chance)")
MIA_ADVANTAGE = Fields(
    "mia_{attack}_advantage",
    "float",
    "|AUC - 0.5|: how far the attack is from chance in either direction (0 = none)",
)
MIA_AUC_CI = Fields(
    "mia_{attack}_auc_ci", "list", "Newcombe's score 95% interval of the AUC (not 0-width at 1)"
)
MIA_TPR = Fields("mia_{attack}_tpr_{fpr}", "float", "share of members found at FPR fpr")
MIA_TPR_CI = Fields("mia_{attack}_tpr_{fpr}_ci", "list", "bootstrap 95% interval of the TPR")
MIA_TPR_TRANSFER = Fields(
    "mia_{attack}_tpr_{fpr}_transfer",
    "float",
    "TPR on the evaluation half at the threshold fixed on the calibration half for FPR fpr",
)
MIA_TPR_TRANSFER_CI = Fields(
    "mia_{attack}_tpr_{fpr}_transfer_ci", "list", "Clopper-Pearson 95% interval of that TPR"
)
MIA_TRANSFER_N = Fields(
    "mia_{attack}_transfer_n", "int", "members (and as many non-members) of the evaluation half"
)
MIA_FPR_ACHIEVED = Fields(
    "mia_{attack}_fpr_{fpr}_achieved", "float", "the FPR that transferred threshold gave"
)
MIA_FPR_ACHIEVED_CI = Fields(
    "mia_{attack}_fpr_{fpr}_achieved_ci", "list", "Clopper-Pearson 95% interval of that FPR"
)
MIA_T_STAT = Fields("mia_{attack}_t_stat", "float", "Welch's t of member vs. non-member scores")
MIA_P_VALUE = Fields("mia_{attack}_p_value", "float", "Welch's test p-value")
MIA_N = Fields("mia_{attack}_n", "int", "members (and as many non-members) scored")
MIA_ROC = Fields("mia_{attack}_roc", "list", "the ROC curve [fpr, tpr], thinned")
MIA_QUERIES = Fields("mia_{attack}_queries_per_image", "float", "network queries per image")
MIA_SECONDS = Fields("mia_{attack}_seconds", "float", "wall time of the attack")
MIA_IMAGES_PER_SECOND = Fields("mia_{attack}_images_per_second", "float", "images scored per s")
MIA_PARAMS = Fields("mia_{attack}_params", "dict", "the attack's parameters")
MIA_SETS = Field(
    "mia_sets",
    "str",
    "content digest of the members and non-members scored, in order: cases with the same "
    "digest scored the same images",
)
MIA_SCORES = Fields(
    "mia_{attack}_scores",
    "dict",
    "per-image scores {members: [...], nonmembers: [...]}, in the order of the sets "
    "``mia_sets`` names (for changes paired on the same images)",
)
ATTACK_FIELDS = (
    MIA_SCORES,
    MIA_AUC,
    MIA_ADVANTAGE,
    MIA_AUC_CI,
    MIA_TPR,
    MIA_TPR_CI,
    MIA_TPR_TRANSFER,
    MIA_TPR_TRANSFER_CI,
    MIA_TRANSFER_N,
    MIA_FPR_ACHIEVED,
    MIA_FPR_ACHIEVED_CI,
    MIA_T_STAT,
    MIA_P_VALUE,
    MIA_N,
    MIA_ROC,
    MIA_QUERIES,
    MIA_SECONDS,
    MIA_IMAGES_PER_SECOND,
    MIA_PARAMS,
)

FPR_POINTS = (0.01, 0.001)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


def check_member_sets(members: torch.Tensor, nonmembers: torch.Tensor) -> None:
    """Members and non-members must be equally many and share no image.

    Raises:
        ValueError: naming the sizes, or how many images appear in both sets.
    """
    if members.shape[0] != nonmembers.shape[0]:
        raise ValueError(
            f"membership inference needs member and non-member sets of equal size, got "
            f"{members.shape[0]} members and {nonmembers.shape[0]} non-members; cut the "
            f"larger set to the smaller one's size"
        )
    if members.shape[0] < 2:
        raise ValueError(
            f"membership inference needs at least 2 images per set, got {members.shape[0]}"
        )
    if members.shape[1:] != nonmembers.shape[1:]:
        raise ValueError(
            f"member images {tuple(members.shape[1:])} and non-member images "
            f"{tuple(nonmembers.shape[1:])} differ in shape"
        )
    a = {
        bytes(row.numpy().tobytes()) for row in members.detach().cpu().reshape(members.shape[0], -1)
    }
    shared = sum(
        bytes(row.numpy().tobytes()) in a
        for row in nonmembers.detach().cpu().reshape(nonmembers.shape[0], -1)
    )
    if shared:
        raise ValueError(
            f"{shared} image(s) are both members and non-members; the non-members must be "
            f"held-out images the model never trained on"
        )


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), every distinct score a threshold, starting at (0, 0).

    The same points as ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    y, s = _as_numpy(labels), _as_numpy(scores)
    pos, neg = (y == 1).sum(), (y == 0).sum()
    if pos == 0 or neg == 0:
        raise ValueError(f"a ROC curve needs both classes, got {pos} positives and {neg} negatives")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    fpr = np.r_[0.0, fps / neg]
    tpr = np.r_[0.0, tps / pos]
    thresholds = np.r_[np.inf, s[last]]
    return fpr, tpr, thresholds


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: P(member score > non-member score), ties counting one half."""
    y, s = _as_numpy(labels), _as_numpy(scores)
    pos, neg = (y == 1).sum(), (y == 0).sum()
    if pos == 0 or neg == 0:
        raise ValueError(f"AUC needs both classes, got {pos} positives and {neg} negatives")
    ranks = stats.rankdata(s)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def tpr_at_fpr(labels, scores, fpr_max: float) -> float:
    """Highest TPR among thresholds whose FPR is at most ``fpr_max``.

    With n non-members the smallest non-zero FPR is 1/n: below it this is the TPR
    at FPR = 0 (no non-member above the threshold).
    """
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= fpr_max + 1e-12].max())


def _member_classifier(c: float):
    """A standardised logistic regression with inverse regularisation ``c``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


def _labelled(member_features, nonmember_features) -> tuple[np.ndarray, np.ndarray]:
    m, h = np.asarray(member_features), np.asarray(nonmember_features)
    return np.r_[m, h], np.r_[np.ones(m.shape[0]), np.zeros(h.shape[0])]


def cross_fitted_scores(
    member_features, nonmember_features, folds: int, c: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold member scores (higher = member) of a standardised logistic regression
    (inverse regularisation ``c``) trained to tell the two sets apart: every row is
    scored by a classifier fitted on the other ``folds - 1`` stratified folds. The
    caller checks that ``folds`` >= 2 and that each set has at least ``folds`` rows."""
    from sklearn.model_selection import StratifiedKFold

    x, y = _labelled(member_features, nonmember_features)
    n_members = int(y.sum())
    scores = np.zeros(y.size)
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = _member_classifier(c).fit(x[fit], y[fit])
        scores[held] = clf.decision_function(x[held])
    return scores[:n_members], scores[n_members:]


def shadow_fitted_scores(
    shadow_members, shadow_nonmembers, member_features, nonmember_features, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Member scores (higher = member) of the target's images from a standardised
    logistic regression (inverse regularisation ``c``) fitted on a shadow model's
    features of its own members and non-members: no target membership label is used."""
    x, y = _labelled(shadow_members, shadow_nonmembers)
    clf = _member_classifier(c).fit(x, y)
    return (
        clf.decision_function(np.asarray(member_features)),
        clf.decision_function(np.asarray(nonmember_features)),
    )


@dataclass(frozen=True)
class TransferredThreshold:
    """A threshold fixed on one split and judged on another (the attacker's real position).

    Attributes:
        fpr_target: the FPR the threshold was fixed for on the calibration non-members.
        threshold: the score above which an image is called a member.
        tpr: share of the evaluation members above it.
        fpr: share of the evaluation non-members above it (the achieved FPR).
        fpr_ci: Clopper-Pearson 95% interval of the achieved FPR.
        tpr_ci: Clopper-Pearson 95% interval of the TPR.
        n_members: evaluation members (the TPR's denominator): ``tpr * n_members`` found.
    """

    fpr_target: float
    threshold: float
    tpr: float
    fpr: float
    fpr_ci: tuple[float, float]
    tpr_ci: tuple[float, float] = (math.nan, math.nan)
    n_members: int = 0

    @property
    def found(self) -> int:
        """Evaluation members above the threshold."""
        return round(self.tpr * self.n_members)


def threshold_for_fpr(nonmember_scores, fpr_target: float) -> float:
    """The lowest threshold ``thr`` with share(score > thr) <= ``fpr_target`` on these scores.

    With n scores, it is the (floor(fpr_target * n) + 1)-th largest: below 1/n that is
    the largest score, so no calibration non-member is called a member.
    """
    h = np.sort(_as_numpy(nonmember_scores))[::-1]
    if h.size == 0:
        raise ValueError("a threshold needs at least one calibration non-member score")
    return float(h[min(int(np.floor(fpr_target * h.size + 1e-9)), h.size - 1)])


def transfer_threshold(
    calibration_nonmembers, eval_members, eval_nonmembers, fpr_target: float
) -> TransferredThreshold:
    """Fix the threshold for ``fpr_target`` on calibration non-members; apply it to a
    disjoint evaluation split (members and non-members) and measure TPR and the FPR
    it actually gives."""
    thr = threshold_for_fpr(calibration_nonmembers, fpr_target)
    m, h = _as_numpy(eval_members), _as_numpy(eval_nonmembers)
    if m.size == 0 or h.size == 0:
        raise ValueError("the evaluation split needs members and non-members")
    false_pos, found = int((h > thr).sum()), int((m > thr).sum())
    ci = stats.binomtest(false_pos, h.size).proportion_ci(0.95, method="exact")
    tpr_ci = stats.binomtest(found, m.size).proportion_ci(0.95, method="exact")
    return TransferredThreshold(
        fpr_target,
        thr,
        found / m.size,
        false_pos / h.size,
        (ci.low, ci.high),
        (tpr_ci.low, tpr_ci.high),
        int(m.size),
    )


def transferred_found(
    member_scores, nonmember_scores, fpr_target: float, seed: int
) -> tuple[list[int], int]:
    """Which members of the evaluation half an attack finds at the threshold fixed on the
    calibration half's non-members for ``fpr_target`` (as ``score_attack`` splits them
    with ``seed``): (their indices among all members, members judged). Two attacks scored
    on the same images share the split, so their found members pair up member by member
    (``benchmark.measures.paired.fewer_flagged_p``)."""
    m, h = _as_numpy(member_scores), _as_numpy(nonmember_scores)
    cal, ev = split_calibration(m.size, seed)
    if not cal.size or not ev.size:
        raise ValueError(f"{m.size} members: too few to split into calibration and evaluation")
    thr = threshold_for_fpr(h[cal], fpr_target)
    return sorted(int(i) for i in ev[m[ev] > thr]), int(ev.size)


def split_calibration(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint calibration and evaluation indices of n images (halves; seeded)."""
    order = np.random.default_rng(seed).permutation(n)
    return order[: n // 2], order[n // 2 :]


@dataclass
class AttackScore:
    """What an attack achieved on one member/non-member pair of sets."""

    auc: float
    auc_ci: tuple[float, float]
    tpr: dict[float, float]
    tpr_ci: dict[float, tuple[float, float]]
    t_stat: float
    p_value: float
    n: int
    roc: tuple[list[float], list[float]] = field(default=((), ()))
    transferred: dict[float, TransferredThreshold] = field(default_factory=dict)

    def as_record(self, attack: str) -> dict:
        """The record entries of attack ``attack`` (its registry name)."""
        rec = {
            MIA_AUC(attack=attack): self.auc,
            MIA_ADVANTAGE(attack=attack): advantage(self.auc),
            MIA_AUC_CI(attack=attack): list(self.auc_ci),
            MIA_T_STAT(attack=attack): self.t_stat,
            MIA_P_VALUE(attack=attack): self.p_value,
            MIA_N(attack=attack): self.n,
            MIA_ROC(attack=attack): [list(self.roc[0]), list(self.roc[1])],
        }
        for point, value in self.tpr.items():
            rec[MIA_TPR(attack=attack, fpr=fpr_tag(point))] = value
            rec[MIA_TPR_CI(attack=attack, fpr=fpr_tag(point))] = list(self.tpr_ci[point])
        for point, t in self.transferred.items():
            tag = fpr_tag(point)
            rec[MIA_TRANSFER_N(attack=attack)] = t.n_members
            rec[MIA_TPR_TRANSFER(attack=attack, fpr=tag)] = t.tpr
            rec[MIA_TPR_TRANSFER_CI(attack=attack, fpr=tag)] = list(t.tpr_ci)
            rec[MIA_FPR_ACHIEVED(attack=attack, fpr=tag)] = t.fpr
            rec[MIA_FPR_ACHIEVED_CI(attack=attack, fpr=tag)] = list(t.fpr_ci)
        return rec


def fpr_tag(point: float) -> str:
    """0.01 -> '1pct', 0.001 -> '0.1pct'."""
    return f"{point * 100:g}pct"


def _thin_roc(fpr: np.ndarray, tpr: np.ndarray, max_points: int = 200) -> tuple[list, list]:
    if fpr.size > max_points:
        keep = np.unique(np.r_[np.linspace(0, fpr.size - 1, max_points).round().astype(int)])
        fpr, tpr = fpr[keep], tpr[keep]
    return [round(float(v), 5) for v in fpr], [round(float(v), 5) for v in tpr]


def score_attack(
    member_scores,
    nonmember_scores,
    fpr_points: tuple[float, ...] = FPR_POINTS,
    n_boot: int = 500,
    seed: int = 0,
) -> AttackScore:
    """AUC with Newcombe's score interval, TPR at ``fpr_points`` with bootstrap 95%
    intervals, and Welch's t-test.

    The TPRs at ``fpr_points`` are the oracle's: the threshold is picked on the scores
    it is judged on. ``transferred`` holds the honest ones: the threshold fixed on a
    random half of the non-members (calibration), the TPR and the achieved FPR measured
    on the other half of both sets (evaluation).

    Args:
        member_scores, nonmember_scores: (n,) per-image scores, higher = member.
        n_boot: bootstrap resamples (members and non-members resampled separately).
    """
    m, h = _as_numpy(member_scores), _as_numpy(nonmember_scores)
    if m.size != h.size:
        raise ValueError(f"equal member and non-member counts needed, got {m.size} and {h.size}")
    if not (np.isfinite(m).all() and np.isfinite(h).all()):
        raise FloatingPointError("an attack returned non-finite scores; the model output NaN/inf")
    labels = np.r_[np.ones(m.size), np.zeros(h.size)]
    scores = np.r_[m, h]
    auc = roc_auc(labels, scores)
    tpr = {p: tpr_at_fpr(labels, scores, p) for p in fpr_points}

    def tprs(bm: np.ndarray, bh: np.ndarray) -> np.ndarray:
        bs = np.r_[bm, bh]
        return np.array([tpr_at_fpr(labels, bs, p) for p in fpr_points])

    intervals = [tuple(map(float, row)) for row in bootstrap_ci(tprs, [m, h], n_boot, seed)]

    with warnings.catch_warnings():  # constant scores: scipy warns, the result is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(m, h, equal_var=False)
    t_stat, p_value = float(test.statistic), float(test.pvalue)
    if not np.isfinite(t_stat):  # identical constant scores: no evidence either way
        t_stat, p_value = 0.0, 1.0
    fpr, tpr_curve, _ = roc_curve(labels, scores)
    cal, ev = split_calibration(m.size, seed)
    transferred = (
        {p: transfer_threshold(h[cal], m[ev], h[ev], p) for p in fpr_points}
        if cal.size and ev.size
        else {}
    )
    return AttackScore(
        auc=auc,
        auc_ci=auc_interval(auc, m.size, h.size),
        tpr=tpr,
        tpr_ci=dict(zip(fpr_points, intervals, strict=True)),
        t_stat=t_stat,
        p_value=p_value,
        n=int(m.size),
        roc=_thin_roc(fpr, tpr_curve),
        transferred=transferred,
    )
