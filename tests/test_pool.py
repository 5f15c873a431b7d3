"""The CPU pool (``benchmark.pool.train_many``): models, classifiers and audits
in parallel processes, each after what it needs; and which audits ``benchmark.prefetch``
gives it (tests/test_store.py runs one: the figures are an in-process audit's)."""

import json
import time
from pathlib import Path

import pytest

from benchmark.audit import run_case
from benchmark.cache import Cache
from benchmark.errors import ConfigError
from benchmark.pool import BuildJob, JobFailure, TrainSpec, train_many
from benchmark.prefetch import audit_jobs
from benchmark.session import Session
from benchmark.tiers import Rehearsal, smoke_case


def stamp(folder: str, name: str, needs: tuple[str, ...], fail: bool | str = False) -> str:
    """A pool job: checks that what it needs was written before it started, then writes
    its own stamp (module level, so the spawned workers unpickle it by name)."""
    missing = [n for n in needs if not (Path(folder) / n).exists()]
    if missing:
        raise AssertionError(f"{name} started before {missing}")
    if fail == "config":
        raise ConfigError(f"{name} has a bad setting")
    if fail:
        raise RuntimeError(f"{name} breaks")
    time.sleep(0.2)
    (Path(folder) / name).write_text(json.dumps(time.time()))
    return name.upper()


def _job(folder, name, needs=(), fail=False, required=True):
    return BuildJob(name, stamp, (str(folder), name, tuple(needs), fail), tuple(needs), required)


def test_each_job_starts_after_what_it_needs_and_returns_its_result(tmp_path):
    jobs = (_job(tmp_path, "a"), _job(tmp_path, "b"))
    after = (_job(tmp_path, "c", ["a", "b"]), _job(tmp_path, "d", ["c"]), _job(tmp_path, "e"))
    trained, results = train_many([], Cache(tmp_path / "cache"), False, 2, jobs, after)
    assert trained == []
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}
    assert {p.name for p in tmp_path.iterdir()} >= {"a", "b", "c", "d", "e"}


def test_a_failed_optional_job_skips_what_needs_it_and_a_required_one_raises(tmp_path):
    after = (
        _job(tmp_path, "bad", fail=True, required=False),
        _job(tmp_path, "after-bad", ["bad"], required=False),
        _job(tmp_path, "fine", required=False),
    )
    _, results = train_many([], Cache(tmp_path / "cache"), False, 2, (), after)
    failure = results.pop("bad")
    assert isinstance(failure, JobFailure) and not failure.deterministic
    assert isinstance(failure.error, RuntimeError) and "bad breaks" in str(failure.error)
    assert results == {"fine": "FINE"}
    assert not (tmp_path / "after-bad").exists()

    after = (_job(tmp_path, "x", fail=True), _job(tmp_path, "y"))
    with pytest.raises(RuntimeError, match="x breaks"):
        train_many([], Cache(tmp_path / "cache2"), False, 2, (), after)


def test_one_task_runs_in_the_callers_process(tmp_path):
    assert train_many([], Cache(tmp_path), False, 2, (), (_job(tmp_path, "a"),)) == ([], {})
    assert not (tmp_path / "a").exists()


def _cases(session):
    return [session.settings.scaled(smoke_case("dummy", n, n_gen=4)) for n in (32, 64)]


def test_prefetch_leaves_stored_audits_alone_unless_reaudit(tmp_path):
    session = Session(tmp_path, rehearsal=Rehearsal(), progress=False)
    cases = _cases(session)
    for case in cases:
        run_case(case, session)  # stored, in this process
    fresh = Session(tmp_path, rehearsal=Rehearsal(), progress=False)
    assert audit_jobs(fresh, cases, ()) == {}
    again = Session(tmp_path, rehearsal=Rehearsal(), progress=False, reaudit=True)
    jobs = audit_jobs(again, cases, ())
    assert sorted(j.what for j in jobs) == sorted(f"audit {c.case_id}" for c in cases)
    by_name = {job.what: job for job in jobs}
    for case in cases:  # each after its model
        needs = by_name[f"audit {case.case_id}"].needs
        assert TrainSpec(case.model, case.train, case.data) in needs


def test_a_bad_setting_in_a_worker_is_reported_as_deterministic(tmp_path):
    """A MemobenchError (a bad input or setting) fails the same way every time: the pool
    returns it as deterministic, so the case reports it instead of sampling again."""
    after = (_job(tmp_path, "cfg", fail="config", required=False), _job(tmp_path, "ok"))
    _, results = train_many([], Cache(tmp_path / "cache"), False, 2, (), after)
    assert results["cfg"].deterministic and isinstance(results["cfg"].error, ConfigError)


def test_run_case_reports_a_workers_deterministic_failure_without_auditing_again(tmp_path):
    from benchmark.audit import case_audit_key
    from benchmark.models.store import family_for

    session = Session(tmp_path, rehearsal=Rehearsal(), progress=False)
    case = _cases(session)[0]
    model = session.model(case.model, case.train, case.data)
    key = case_audit_key(case, session, model.key, family_for(case.model))
    session.log.failed[key] = JobFailure("audit", ConfigError("no such setting x"))
    with pytest.raises(ConfigError, match="no such setting x") as err:
        run_case(case, session)
    assert any("not sampled again" in note for note in err.value.__notes__)
    assert not session.cache.path("audits", key).exists()


def test_running_out_of_memory_in_a_worker_is_not_taken_for_a_bad_input():
    from benchmark.errors import DeviceError

    assert not JobFailure("audit", DeviceError("only 0 image(s) fit")).deterministic
    assert JobFailure("audit", FloatingPointError("nan")).deterministic
    assert not JobFailure("audit", RuntimeError("worker died")).deterministic
