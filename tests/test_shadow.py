"""GSA trained on a shadow model, as its paper runs it (issue 34, attacks by the paper).

The shadow split takes images the case itself does not use; the shadow-trained GSA
learns on a shadow model's own membership and finds the members of a model that
memorizes, and nothing on a model that never saw them; the audit runs it only where a
case trains a shadow model, and the leaderboard shows its columns only there.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
import torch

from benchmark import registry
from benchmark.attacks.base import Shadow, get_attack, membership_sets, run_attack
from benchmark.audit import run_case
from benchmark.config import CaseConfig, DataConfig, identity
from benchmark.data import load_dataset
from benchmark.errors import ConfigError, TooFewImagesError
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.metrics.base import AuditInputs
from benchmark.metrics.membership_inference import (
    MIA_ATTACKS,
    MIA_SHADOW_MODEL,
    membership_audit,
    shadow_sets,
)
from benchmark.mitigations.none import NoMitigation
from benchmark.plan import attack_nfe
from benchmark.report.leaderboard import render
from benchmark.session import Session
from benchmark.tiers import PATHMNIST_SHADOW_N, SHADOW_SEED_OFFSET, paper_cases
from tests.helpers import analytic_memorizer, write_medmnist_npz
from tests.test_report import record, results_file


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(x.numpy().tobytes()) for x in images}


@pytest.mark.parametrize("source", ["digits", "medmnist"])
def test_the_shadow_split_uses_no_image_of_the_case(source, tmp_path):
    """Digits carve members and non-members out of one pool; a MedMNIST file has a test
    split for the non-members. Either way the shadow's members and non-members are
    images the case neither trained on nor scores as non-members (nor x_p itself), and
    the shadow's non-members come from the pool the case's own come from: a file's test
    split is another source (PathMNIST's is another clinical centre), and a classifier
    learnt on members against training-pool images would not transfer to it."""
    if source == "digits":
        cfg = DataConfig(n_train=64, saf=True)
    else:
        write_medmnist_npz(tmp_path / "pneumoniamnist.npz", n_train=100, n_test=70)
        cfg = DataConfig(name="pneumoniamnist", n_train=30, saf=True, root=str(tmp_path))
    case, shadow = load_dataset(cfg), load_dataset(replace(cfg, shadow=True))
    assert shadow.train.shape == case.train.shape and shadow.heldout.shape[0] >= 2
    used = _rows(case.train) | _rows(case.heldout) | _rows(case.saf.original[None])
    assert not _rows(shadow.train) & used and not _rows(shadow.heldout) & used
    assert not _rows(shadow.train) & _rows(shadow.heldout)
    if source == "medmnist":
        pools = registry.datasets.get(cfg.name)(root=cfg.root).checked_pools()
        test_split = _rows(pools.heldout_images.float() * 2 - 1)
        assert _rows(case.heldout) <= test_split and _rows(shadow.heldout) <= test_split
        assert shadow.heldout.shape[0] == 30  # as many as the members, from the 40 left
    else:
        # the case's own split is the one it had before the shadow existed (digests
        # taken at the commit before shadow splits were added)
        digest = [hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16] for t in
                  (case.train, case.heldout)]  # fmt: skip
        assert digest == ["f11632d4a659fe70", "c6759e218ee62a91"]


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
    without = membership_audit(model, data, None, **kw)
    assert without[MIA_ATTACKS] == ["loss"]
    small = Shadow(shadow.model, shadow.members[:8], shadow.nonmembers[:8])
    with_shadow = membership_audit(model, data, None, shadow=small, **kw)
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


def test_the_shadow_is_called_through_the_runs_speed_switches_as_its_target_is(tmp_path):
    """A shadow scored in fp32 while its target runs under bf16 autocast would fit the
    classifier on features of another precision: the shadow goes through the context's
    ``fast`` as the case's model does."""
    session, wrapped, trained = Session(cache=tmp_path), [], []
    shadow_data = session.dataset(DataConfig(n_train=64, shadow=True))
    session.model = lambda model, train, data: (
        trained.append((train, data)) or (analytic_memorizer(shadow_data))
    )
    session.fast = lambda model: wrapped.append(model) or replace(model, key="fast")
    case = CaseConfig(data=DataConfig(n_train=64), shadow=True)
    inputs = AuditInputs(case, None, None, None, NoMitigation(), session)
    shadow = shadow_sets(inputs, max_per_set=8)
    assert len(wrapped) == 1 and shadow.model.key == "fast" and shadow.members.shape[0] == 8
    # trained like the case on the shadow split, from seeds of its own
    ((train, data),) = trained
    assert data == replace(case.data, shadow=True)
    assert train == replace(case.train, seed=case.train.seed + SHADOW_SEED_OFFSET)


def test_the_cpu_pool_trains_a_shadow_model_beside_its_case(tmp_path):
    """On the CPU the pool trains every model a case needs before its audit, the shadow
    included (under the key the audit then loads it with), and audits it there."""
    from benchmark.pool import TrainSpec
    from benchmark.prefetch import prefetch
    from benchmark.tiers import Rehearsal, shadow_training, smoke_case

    session = Session(tmp_path, rehearsal=Rehearsal(), progress=False)
    case = replace(session.settings.scaled(smoke_case("dummy", 32, n_gen=4)), shadow=True)
    prefetch(session, [], [case])
    shadow = TrainSpec(case.model, *shadow_training(case))
    assert session.log.trained == {TrainSpec(case.model, case.train, case.data), shadow}
    assert len(session.log.audited) == 1
    assert len(list((tmp_path / "detectors").glob("*.safetensors"))) == 2  # the case's only
    # the worker's audit used the model the pool trained: the case loads it, trains none
    models = sorted((tmp_path / "models").rglob("*.safetensors"))
    record = run_case(case, session).metrics
    assert sorted((tmp_path / "models").rglob("*.safetensors")) == models and len(models) == 2
    trained = session.model(shadow.model, shadow.train, shadow.data)
    assert record[MIA_SHADOW_MODEL] == trained.key
