"""GSA trained on a shadow model, as its paper runs it (issue 34, attacks by the paper).

The shadow split takes images the case itself does not use; the shadow-trained GSA
learns on a shadow model's own membership and finds the members of a model that
memorizes, and nothing on a model that never saw them; the audit runs it only where a
case trains a shadow model, and the leaderboard shows its columns only there.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmark.attacks.base import Shadow, get_attack, membership_sets, run_attack
from benchmark.config import CaseConfig, DataConfig, identity
from benchmark.data import load_dataset
from benchmark.errors import ConfigError, TooFewImagesError
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.metrics.membership_inference import MIA_ATTACKS, membership_audit
from benchmark.mitigations.none import NoMitigation
from benchmark.plan import attack_nfe
from benchmark.report.leaderboard import render
from benchmark.tiers import PATHMNIST_SHADOW_N, paper_cases
from tests.helpers import analytic_memorizer, write_medmnist_npz
from tests.test_report import record, results_file


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(x.numpy().tobytes()) for x in images}


@pytest.mark.parametrize("source", ["digits", "medmnist"])
def test_the_shadow_split_uses_no_image_of_the_case(source, tmp_path):
    """Digits carve members and non-members out of one pool; a MedMNIST file has a test
    split for the non-members. Either way the shadow's members and non-members are
    images the case neither trained on nor scores as non-members."""
    if source == "digits":
        cfg = DataConfig(n_train=64, saf=True)
    else:
        write_medmnist_npz(tmp_path / "pneumoniamnist.npz", n_train=100, n_test=30)
        cfg = DataConfig(name="pneumoniamnist", n_train=30, saf=True, root=str(tmp_path))
    case, shadow = load_dataset(cfg), load_dataset(replace(cfg, shadow=True))
    assert shadow.train.shape == case.train.shape and shadow.heldout.shape[0] >= 2
    used = _rows(case.train) | _rows(case.heldout)
    assert not _rows(shadow.train) & used and not _rows(shadow.heldout) & used
    assert not _rows(shadow.train) & _rows(shadow.heldout)
    # the case's own split is the one it had before the shadow existed
    assert torch.equal(load_dataset(cfg).train, case.train)


def test_a_shadow_split_that_does_not_fit_is_refused_by_name():
    with pytest.raises(TooFewImagesError, match="shadow split of 'digits' with n_train=1024"):
        load_dataset(DataConfig(n_train=1024, shadow=True))
    with pytest.raises(ConfigError, match="set CaseConfig.shadow instead"):
        CaseConfig(data=DataConfig(shadow=True))


def test_the_switches_leave_every_existing_key_alone():
    """Off by default and out of the identity then, so no cached model or audit of a
    case without a shadow is keyed anew."""
    assert "shadow" not in identity(DataConfig()) and "shadow" not in identity(CaseConfig())
    assert identity(CaseConfig(shadow=True))["shadow"] is True
    shadowed = [c for _, c in paper_cases() if c.shadow]
    assert {(c.data.name, c.data.n_train) for c in shadowed} == {
        ("pathmnist", n) for n in PATHMNIST_SHADOW_N
    }


@pytest.fixture(scope="module")
def digits():
    data = load_dataset(DataConfig(n_train=64))
    shadow_data = load_dataset(DataConfig(n_train=64, shadow=True))
    shadow = Shadow(analytic_memorizer(shadow_data), *membership_sets(shadow_data))
    return data, shadow_data, shadow


def test_shadow_gsa_finds_the_members_of_a_memorizer(digits):
    data, _, shadow = digits
    members, nonmembers = membership_sets(data)
    run = run_attack(
        get_attack("gsa-shadow", times=(0.05, 0.1)),
        analytic_memorizer(data),
        members,
        nonmembers,
        shadow=shadow,
    )
    assert run.score.auc > 0.9 and run.score.auc_ci[0] > 0.5, run.score


def test_shadow_gsa_finds_nothing_on_a_model_that_never_saw_the_members(digits):
    """The same attack on a memorizer of other images (the shadow's non-members): the
    case's members and non-members are alike to it, and the AUC's interval holds 0.5."""
    data, shadow_data, shadow = digits
    blind = analytic_memorizer(replace(shadow_data, train=shadow_data.heldout))
    members, nonmembers = membership_sets(data)
    run = run_attack(
        get_attack("gsa-shadow", times=(0.05, 0.1)), blind, members, nonmembers, shadow=shadow
    )
    lo, hi = run.score.auc_ci
    assert lo < 0.5 < hi, run.score


def test_shadow_gsa_runs_only_with_a_shadow(digits):
    data, _, shadow = digits
    model = analytic_memorizer(data)
    members, nonmembers = membership_sets(data, max_per_set=8)
    with pytest.raises(ConfigError, match="learns on a shadow model and none was given"):
        run_attack(get_attack("gsa-shadow"), model, members, nonmembers)
    kw = dict(attacks=["loss", "gsa-shadow"], max_per_set=8, quick=True)
    without = membership_audit(model, data, NoMitigation(), **kw)
    assert without[MIA_ATTACKS] == ["loss"]
    small = Shadow(shadow.model, shadow.members[:8], shadow.nonmembers[:8])
    with_shadow = membership_audit(model, data, NoMitigation(), shadow=small, **kw)
    assert with_shadow[MIA_ATTACKS] == ["loss", "gsa-shadow"]
    assert 0 <= with_shadow[MIA_AUC(attack="gsa-shadow_weights")] <= 1
    # the plan counts its queries only where a case trains a shadow
    cls = get_attack("gsa-shadow")
    extra = attack_nfe(100, shadow=True) - attack_nfe(100)
    assert extra == cls.queries_per_image * 2 * 100


def test_the_leaderboard_shows_the_shadow_columns_only_where_measured(tmp_path):
    plain = record("ddim-digits-none", 0.1)
    board = render([results_file(tmp_path / "a.json", [plain])], tmp_path / "a.html")
    assert "GSA (shadow)" not in board.read_text()
    assert "GSA (cross-fitted)" in board.read_text()
    shadowed = record("ddim-pathmnist-none", 0.1, **{MIA_AUC(attack="gsa-shadow_weights"): 0.8})
    board = render([results_file(tmp_path / "b.json", [plain, shadowed])], tmp_path / "b.html")
    assert "GSA (shadow) AUC" in board.read_text()
