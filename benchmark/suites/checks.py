"""What a tuned mitigation or attack must do, as checks on two records (`none`'s and the
mitigated case's), shared by the smoke suite (on the models the settings were tuned on)
and the validation suite (on a model of another seed and split). The margins' figures:
docs/measurements.md, "Where the suite's margins come from".
"""

from __future__ import annotations

import pytest

from benchmark.measures.auc_interval import advantage
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.fid import FID_TEST
from benchmark.measures.membership_scores import MIA_AUC, MIA_AUC_CI
from benchmark.measures.paired import fewer_flagged_p
from benchmark.measures.reproduction import Q_FLAGGED, Q, fewer_reproductions_p
from benchmark.measures.tstar import TSTAR, TSTAR_UPPER
from benchmark.metrics.independent_replication import REPLICATION_INDEPENDENT
from benchmark.record import CIRCULAR, MITIGATION_ENTRY, N_GEN
from benchmark.report.groups import paired_flags

LOSS_AUC = MIA_AUC(attack="loss_weights")  # white box: the released weights
LOSS_AUC_API = MIA_AUC(attack="loss_api")  # queries of the deployed (guided) denoiser
GSA_AUC = MIA_AUC(attack="gsa_weights")
GSA_AUC_CI = MIA_AUC_CI(attack="gsa_weights")

MIA_MIN_AUC = 0.80  # an attack's AUC on a 64-digit model, at least
CPSAMPLE_MARGIN = 0.30  # CPSample's cut of the Carlini fraction at its strongest setting
CPSAMPLE_Q_ALPHA = 0.05  # one-sided Fisher p of fewer reproductions under CPSample
# AMG at its suite setting: its cut of the Carlini fraction and of replication in
# features it does not steer by, and the FID it may cost
AMG_CARLINI_MARGIN = 0.30
AMG_INDEPENDENT_MARGIN = 0.15
AMG_FID_COST = 5.0


def check_cpsample_cuts_copies(plain: dict, guided: dict, what: str) -> None:
    """Fewer copies and fewer reproductions of x_p than `none` on the same seeds, and,
    through the released weights, the very same leak."""
    assert guided[CARLINI_L2] < plain[CARLINI_L2] - CPSAMPLE_MARGIN, (
        f"{what}: Carlini fraction {guided[CARLINI_L2]:.3f} vs {plain[CARLINI_L2]:.3f} "
        f"without it (required drop {CPSAMPLE_MARGIN}); guidance acted on "
        f"{guided[MITIGATION_ENTRY(entry='guided_step_fraction')]:.1%} of the steps"
    )
    # CPSample leaves the weights as they are: a white-box attacker sees `none`'s model
    assert guided[LOSS_AUC] == pytest.approx(plain[LOSS_AUC], abs=1e-9), (
        f"{what}: loss-attack AUC under `weights` {guided[LOSS_AUC]:.3f} vs "
        f"{plain[LOSS_AUC]:.3f}; the raw eps_theta is the same network"
    )
    p, test = fewer_reproductions(guided, plain)
    assert p < CPSAMPLE_Q_ALPHA, (
        f"{what}: |q| = {guided[Q]} of {guided[N_GEN]} samples vs {plain[Q]} of "
        f"{plain[N_GEN]} without it; one-sided {test} p = {p:.3g}, required < "
        f"{CPSAMPLE_Q_ALPHA} (run the smoke tier's N_gen: fewer samples cannot tell)"
    )


def fewer_reproductions(guided: dict, plain: dict) -> tuple[float, str]:
    """One-sided p of fewer reproductions of x_p under the mitigation, and the test's
    name: McNemar's exact test where both cases drew the same samples (the samples
    flagged by one only), Fisher's exact test of two counts otherwise."""
    flags = paired_flags(guided, plain, Q_FLAGGED, (guided[Q], plain[Q]))
    if flags is not None:
        return fewer_flagged_p(*flags), "McNemar (paired)"
    return fewer_reproductions_p(guided[Q], guided[N_GEN], plain[Q], plain[N_GEN]), "Fisher"


def check_cpsample_through_the_api(plain: dict, guided: dict, what: str) -> None:
    """Through the deployed (guided) denoiser the loss attack's advantage drops by the
    margin, and the fingerprint survives less noise: t* at its most below `none`'s."""
    # two-sided: an AUC pushed below chance is a leak with its sign flipped
    guided_adv, plain_adv = advantage(guided[LOSS_AUC_API]), advantage(plain[LOSS_AUC_API])
    assert guided_adv < plain_adv - CPSAMPLE_MARGIN, (
        f"{what}: loss-attack AUC through the deployed denoiser {guided[LOSS_AUC_API]:.3f} "
        f"vs {plain[LOSS_AUC_API]:.3f} (advantage |AUC - 0.5| {guided_adv:.3f} vs "
        f"{plain_adv:.3f}, required drop {CPSAMPLE_MARGIN})"
    )
    assert guided[TSTAR_UPPER] < plain[TSTAR], (
        f"{what}: t* {guided[TSTAR]} (at most {guided[TSTAR_UPPER]}) vs {plain[TSTAR]} without it"
    )


def check_amg_steers_off_copies(plain: dict, amg: dict, what: str) -> None:
    """AMG cuts the Carlini copies (its own criterion: circular, and marked so) for
    little FID."""
    assert CARLINI_L2 in amg[CIRCULAR]  # it decides by the Carlini criterion
    assert amg[CARLINI_L2] < plain[CARLINI_L2] - AMG_CARLINI_MARGIN, (
        f"{what}: Carlini fraction {amg[CARLINI_L2]:.3f} vs {plain[CARLINI_L2]:.3f}"
    )
    assert amg[FID_TEST] < plain[FID_TEST] + AMG_FID_COST, (
        f"{what}: FID_test {amg[FID_TEST]:.1f} vs {plain[FID_TEST]:.1f}"
    )
    assert 0 < amg[MITIGATION_ENTRY(entry="guided_step_fraction")] < 1


def check_amg_in_independent_features(plain: dict, amg: dict, what: str) -> None:
    """In features AMG does not steer by, replication drops by the margin."""
    drop = plain[REPLICATION_INDEPENDENT] - amg[REPLICATION_INDEPENDENT]
    assert drop > AMG_INDEPENDENT_MARGIN, (
        f"{what}: independent replication {amg[REPLICATION_INDEPENDENT]:.3f} vs "
        f"{plain[REPLICATION_INDEPENDENT]:.3f} without it (required drop "
        f"{AMG_INDEPENDENT_MARGIN})"
    )


def check_gsa_finds_the_members(small: dict, what: str) -> None:
    """GSA (its levels and C as tuned) tells the members of a 64-digit model apart."""
    assert small[GSA_AUC] > MIA_MIN_AUC, (
        f"{what}: GSA AUC {small[GSA_AUC]:.3f} (95% CI {small[GSA_AUC_CI]}), required "
        f"above {MIA_MIN_AUC}"
    )
