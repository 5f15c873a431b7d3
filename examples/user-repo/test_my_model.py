"""A lab's own test file, in its own repository: its model (the flow plugin's family,
installed beside memobench) audited with memobench's fixtures, in its CI.

    pip install memobench memobench-flow
    pytest test_my_model.py --memobench-rehearse     # minutes on a CPU: the path works
    pytest test_my_model.py --memobench-device cuda  # the real audit, on a GPU runner

``memobench_session`` comes from memobench's pytest plugin: the run's settings from the
``--memobench-*`` options, the cache, the models it trains once.
"""

from benchmark import registry, run_case, smoke_case


def test_our_model_is_registered():
    assert "flow" in registry.models.names()


def test_our_model_on_64_digits_is_audited(memobench_session, benchmark):
    # the run's sample count: --memobench-n-gen, a rehearsal's 8, or the tier's 1024
    case = smoke_case("flow", 64, n_gen=memobench_session.settings.samples)
    result = benchmark.pedantic(run_case, args=(case, memobench_session), rounds=1, iterations=1)
    benchmark.extra_info.update(result.metrics)
    metrics = result.metrics
    assert metrics["family"] == "flow" and metrics["n_train"] == 64
    assert 0.0 <= metrics["carlini_l2"] <= 1.0
    assert 0.0 <= metrics["mia_loss_weights_auc"] <= 1.0
