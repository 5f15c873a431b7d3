"""Each training image's own risk: was it copied, and does the model give it away?

For a report a data-protection officer can act on, the audit ranks every member:

- **copied**: among the generated samples whose nearest training image (pixels) is
  this member, the smallest Carlini ratio d1/d2 (nearest over second-nearest
  training image); below 1/3 the member counts as reproduced (Carlini et al.
  2023, the criterion of ``benchmark.measures.carlini_l2``). A member no sample
  is nearest to has no ratio (``inf``).
- **identifiable**: its membership-inference score against the held-out images'
  scores, as a conformal p-value: (1 + held-out scores at or above it) / (n_h + 1).
  At or below ``fpr`` an attacker who accepts that false-positive rate flags it;
  a model that leaks nothing then has at most ``fpr`` of its members flagged on
  average, and with fewer than ``1 / fpr - 1`` held-out images none can be (the
  smallest p-value is 1 / (n_h + 1)). The percentile (share of held-out scores
  below it) is kept for display.

``rank_members`` sorts reproduced members first (lowest ratio first), then the rest
by percentile, highest first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.measures.carlini_l2 import nearest_two

CARLINI_RATIO = 1 / 3


@dataclass(frozen=True)
class MemberRisk:
    """One training image's risk.

    Attributes:
        index: the member's position among the members given.
        ratio: the smallest d1/d2 of the samples nearest to it (``inf``: none is).
        sample: the sample with that ratio (-1: none).
        distance: that sample's l2 distance to the member (``inf``: none).
        copies: samples within the criterion (ratio < 1/3) nearest to it.
        percentile: share of held-out scores below its membership score (None: no score).
        p_value: (1 + held-out scores >= its score) / (n_h + 1) (None: no score).
    """

    index: int
    ratio: float
    sample: int
    distance: float
    copies: int
    percentile: float | None
    p_value: float | None = None

    @property
    def reproduced(self) -> bool:
        return self.ratio < CARLINI_RATIO

    def identifiable(self, fpr: float) -> bool:
        """Flagged by a membership attacker who accepts a false-positive rate ``fpr``."""
        return self.p_value is not None and self.p_value <= fpr


def member_ratios(
    samples: torch.Tensor, members: torch.Tensor, device: torch.device | str | None = None
) -> list[tuple[float, int, float, int]]:
    """Per member: (smallest ratio, its sample, that sample's distance, copies)."""
    d1, d2, nearest = nearest_two(samples, members, device=device)
    ratio = (d1 / d2.clamp_min(1e-12)).tolist()
    out = [(math.inf, -1, math.inf, 0) for _ in range(members.shape[0])]
    for s, (m, r, d) in enumerate(zip(nearest.tolist(), ratio, d1.tolist(), strict=True)):
        best, _, _, copies = out[m]
        copies += int(r < CARLINI_RATIO)
        out[m] = (r, s, d, copies) if r < best else (*out[m][:3], copies)
    return out


def percentiles(member_scores, heldout_scores) -> np.ndarray:
    """Each member score's share of held-out scores strictly below it, half of the ties
    counted (``scipy.stats.percentileofscore(..., kind="mean") / 100``)."""
    held = np.sort(np.asarray(heldout_scores, dtype=np.float64))
    scores = np.asarray(member_scores, dtype=np.float64)
    below = np.searchsorted(held, scores, side="left")
    at_most = np.searchsorted(held, scores, side="right")
    return (below + at_most) / (2.0 * len(held))


def p_values(member_scores, heldout_scores) -> np.ndarray:
    """Each member score's conformal p-value against the held-out scores:
    (1 + held-out scores >= it) / (n_h + 1); under no signal P(p <= a) <= a."""
    held = np.sort(np.asarray(heldout_scores, dtype=np.float64))
    scores = np.asarray(member_scores, dtype=np.float64)
    at_least = len(held) - np.searchsorted(held, scores, side="left")
    return (1.0 + at_least) / (len(held) + 1.0)


def rank_members(
    samples: torch.Tensor,
    members: torch.Tensor,
    member_scores=None,
    heldout_scores=None,
    device: torch.device | str | None = None,
) -> list[MemberRisk]:
    """Every member's risk, riskiest first (see the module docstring).

    Args:
        samples: (N, C, H, W) generated images, as the members are scaled.
        members: (M, C, H, W) the training images, M >= 2.
        member_scores, heldout_scores: a membership attack's scores (higher: more
            member-like), the members' in the members' order; None: no percentile.
    """
    if (member_scores is None) != (heldout_scores is None):
        raise ValueError("give both the members' and the held-out images' scores, or neither")
    if member_scores is not None and len(member_scores) != members.shape[0]:
        raise ValueError(f"{len(member_scores)} membership scores for {members.shape[0]} members")
    pct = pv = None
    if member_scores is not None:
        pct = percentiles(member_scores, heldout_scores)
        pv = p_values(member_scores, heldout_scores)
    risks = [
        MemberRisk(
            i,
            r,
            s,
            d,
            c,
            None if pct is None else float(pct[i]),
            None if pv is None else float(pv[i]),
        )
        for i, (r, s, d, c) in enumerate(member_ratios(samples, members, device))
    ]
    return sorted(
        risks,
        key=lambda m: (
            not m.reproduced,
            m.ratio if m.reproduced else 0.0,
            -(m.percentile if m.percentile is not None else -1.0),
            m.ratio,
            m.index,
        ),
    )
