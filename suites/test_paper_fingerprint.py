"""Paper tier: the seed paper's fingerprint audit settings (Dombrowski & Kainz, 2023).

PathMNIST with N_train in {1000, 5000, 10000, 20000, 50000} (its Table 1) and
the six MedMNIST sets of its Table 2 at their full training splits, 28x28,
30000 training steps, N_gen from ``--memobench-n-gen`` (the paper: 150000 for
Table 1, 50000 for Table 2; the paper tier's default is 50000). GPU only:
these cases skip with a reason on a machine without CUDA.
"""

from __future__ import annotations

import pytest

from benchmark import registry
from benchmark.config import CaseConfig, DataConfig, ModelConfig, TrainConfig
from benchmark.tiers import suite_names

PATHMNIST_N = [1000, 5000, 10000, 20000, 50000]
# Table 2: dataset -> N_train (the full MedMNIST training split)
TABLE2 = {
    "breastmnist": 546,
    "retinamnist": 1080,
    "pneumoniamnist": 4708,
    "bloodmnist": 11959,
    "organsmnist": 13940,
    "chestmnist": 78468,
}


def paper_case(family: str, dataset: str, n_train: int, n_gen: int) -> CaseConfig:
    return CaseConfig(
        data=DataConfig(name=dataset, n_train=n_train, saf=True),
        model=ModelConfig(
            family=family,
            block_out_channels=(64, 128, 256, 256),
            layers_per_block=2,
            attention=True,
            norm_num_groups=32,
        ),
        train=TrainConfig(
            steps=30000,
            batch_size=128,
            lr=2e-4,
            warmup_steps=1000,
            ema_decay=0.9999,
            checkpoint_every=2000,
        ),
        sampler=registry.models.get(family).paper_sampler(),
        n_gen=n_gen,
    )


def _record(case, audits, benchmark):
    samples, metrics = benchmark.pedantic(audits.run, args=(case,), rounds=1, iterations=1)
    benchmark.extra_info.update(metrics, tier="paper")
    assert samples.images.shape[0] == case.n_gen
    return metrics


@pytest.mark.paper
@pytest.mark.gpu
@pytest.mark.parametrize("n_train", PATHMNIST_N)
@pytest.mark.parametrize("family", suite_names(registry.models))
def test_pathmnist_table1(family, n_train, memobench_context, audits, benchmark):
    m = _record(
        paper_case(family, "pathmnist", n_train, memobench_context.n_gen), audits, benchmark
    )
    if n_train == 1000:  # the paper: |q| = 151 vs E|q| = 150, H0 kept
        assert m["q_p_value"] >= 0.05
    else:  # the paper: |q| = 0, H0 (copies x_p like any image) rejected
        assert m["q_p_value"] < 0.05


@pytest.mark.paper
@pytest.mark.gpu
@pytest.mark.parametrize("dataset", list(TABLE2))
@pytest.mark.parametrize("family", suite_names(registry.models))
def test_medmnist_table2(family, dataset, memobench_context, audits, benchmark):
    m = _record(
        paper_case(family, dataset, TABLE2[dataset], memobench_context.n_gen), audits, benchmark
    )
    assert -1 <= m["tstar"] < 1
