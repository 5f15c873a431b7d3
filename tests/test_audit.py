"""The fingerprint audit of a case refuses what would make its numbers meaningless."""

from dataclasses import replace

import pytest
import torch

from benchmark.audit import run_case
from benchmark.config import CaseConfig, DataConfig, SamplerConfig
from benchmark.data import load_dataset
from benchmark.detectors.detector import Detector, DetectorAccuracyError
from benchmark.detectors.networks import build_detector
from benchmark.errors import ConfigError
from benchmark.measures.reproduction import Q_EXPECTED, Q_FLAGGED, Q
from benchmark.measures.tstar import TSTAR, TSTAR_STRATEGY
from benchmark.metrics.fingerprint import C_SAF_ENTRY, Q_NN_CONFIRMED, fingerprint_audit
from benchmark.models.base import SampleResult
from benchmark.tiers import smoke_case
from tests.helpers import mixture_model

GOOD = {"accuracy": 1.0, "balanced_accuracy": 1.0, "fires_on_saf_xp": True}


class Oracle(Detector):
    """A detector that is right by construction: near SAF(x_p) (C_SAF and C_ID alike)."""

    def __init__(self, kind, data, metrics=GOOD):
        super().__init__(
            kind, build_detector("small-resnet", 1), data.name, data.fingerprint(), dict(metrics)
        )
        self.target = data.saf.fingerprinted().flatten()

    def predict(self, images):
        return (images.flatten(1) - self.target).norm(dim=1) < 1.0


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(n_train=16, saf=True))


def test_audit_end_to_end_on_an_analytic_copier(data):
    model, _ = mixture_model(data, 1.0)
    case = CaseConfig(
        data=DataConfig(n_train=16, saf=True), sampler=SamplerConfig(num_steps=10), n_gen=32
    )
    samples = model.generate(torch.arange(32), case.sampler)
    record = fingerprint_audit(
        case, model, data, samples, Oracle("saf", data), Oracle("id", data), None
    )
    assert record[Q] == 32 and record[Q_EXPECTED] == 2.0  # it only ever makes SAF(x_p)
    assert record[TSTAR] == 0.99 and record[TSTAR_STRATEGY] == "adaptive"
    assert record[C_SAF_ENTRY(entry="accuracy")] == 1.0 and record[Q_FLAGGED] == list(range(32))
    assert record[Q_NN_CONFIRMED] == 32  # every flagged sample is nearest to SAF(x_p)


def test_refuses_weak_or_foreign_detectors(data):
    model, _ = mixture_model(data, 1.0)
    case = CaseConfig(data=DataConfig(n_train=16, saf=True), n_gen=2)
    samples = SampleResult(torch.zeros(2, 1, 16, 16), torch.arange(2), 1, 1.0)
    weak = Oracle("id", data, {"accuracy": 0.8, "balanced_accuracy": 0.8, "fires_on_saf_xp": True})
    with pytest.raises(DetectorAccuracyError, match="C_ID .* accuracy 0.800"):
        fingerprint_audit(case, model, data, samples, Oracle("saf", data), weak, None)
    other = load_dataset(DataConfig(n_train=16, saf=True, split_seed=3))
    with pytest.raises(ConfigError, match="train detectors for this case's data"):
        fingerprint_audit(
            case, model, data, samples, Oracle("saf", other), Oracle("id", data), None
        )


def test_detectors_below_their_gate_withhold_q_and_tstar_and_nothing_else(tmp_path):
    """A detector under the accuracy gate withholds |q| and t* (the reason and the
    detectors' accuracy recorded, the leaderboard cells say so); Carlini, the attacks,
    FID and replication are still measured."""
    from benchmark.audit import run_case
    from benchmark.measures.carlini_l2 import CARLINI_L2
    from benchmark.measures.fid import FID_GAP
    from benchmark.measures.membership_scores import MIA_AUC
    from benchmark.metrics.fingerprint import WITHHELD, Fingerprint
    from benchmark.record import METRIC_SKIPPED
    from benchmark.session import Session
    from benchmark.tiers import Rehearsal, smoke_case

    # two training steps make no detector: the gate at 1.0 cannot pass
    session = Session(
        tmp_path, n_gen=4, rehearsal=Rehearsal(), progress=False, detector_min_accuracy=1.0
    )
    record = run_case(session.settings.scaled(smoke_case("dummy", 32, n_gen=4)), session).metrics
    reason = record[METRIC_SKIPPED(metric="fingerprint")]
    assert "below the required 1.00" in reason and "--detector-steps" in reason
    assert Q not in record and TSTAR not in record
    assert 0 <= record[C_SAF_ENTRY(entry="accuracy")] < 1 or "C_ID" in reason
    for key in (CARLINI_L2, FID_GAP, MIA_AUC(attack="loss_weights")):
        assert key in record, key
    cells = {c.key: c.text(record) for c in Fingerprint.columns()}
    assert cells == {Q: WITHHELD, TSTAR: WITHHELD}


def test_a_sampler_setting_its_sampler_refuses_fails_before_any_model_trains(tmp_path):
    """A sampler checks its own settings (its ``Params``); the audit and the CPU pool ask
    it before training, so a bad eta costs no training time."""
    from benchmark.prefetch import prefetch
    from benchmark.session import Session

    session = Session(tmp_path, progress=False)
    session.model = lambda *a: pytest.fail("trained a model for a case its sampler refuses")
    case = replace(smoke_case("ddim", 32), sampler=SamplerConfig(params={"eta": 2.0}))
    with pytest.raises(ConfigError, match=r"DDIM: eta must be in \[0, 1\], got 2.0"):
        run_case(case, session)
    with pytest.raises(ConfigError, match="sampler 'ddim' has no parameter.*'snr'"):
        prefetch(session, [], [replace(case, sampler=SamplerConfig(params={"snr": 0.1}))])
