from dataclasses import replace

import pytest

from benchmark.config import (
    CaseConfig,
    DataConfig,
    MitigationConfig,
    ModelConfig,
    SamplerConfig,
    TrainConfig,
    stable_hash,
)
from benchmark.errors import ConfigError
from benchmark.samplers.base import get_sampler


def test_hash_is_stable_and_sensitive():
    a = CaseConfig()
    assert stable_hash(a) == stable_hash(CaseConfig())
    assert stable_hash(a) != stable_hash(replace(a, n_gen=a.n_gen + 1))
    assert stable_hash(a) != stable_hash(replace(a, train=replace(a.train, lr=1e-4)))
    # Where the data lives, or how often we checkpoint, does not change results.
    assert stable_hash(a) == stable_hash(replace(a, data=replace(a.data, root="/elsewhere")))
    assert stable_hash(a) == stable_hash(replace(a, train=replace(a.train, checkpoint_every=7)))


def test_mitigation_params_are_order_free():
    x = MitigationConfig("cpsample", {"alpha": 0.001, "scale": 1.0})
    y = MitigationConfig("cpsample", (("scale", 1.0), ("alpha", 0.001)))
    assert x == y and stable_hash(x) == stable_hash(y)
    assert x.kwargs == {"alpha": 0.001, "scale": 1.0}


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: DataConfig(n_train=0), "n_train"),
        (lambda: TrainConfig(steps=0), "steps"),
        (lambda: TrainConfig(lr=-1), "lr"),
        (lambda: SamplerConfig(num_steps=0), "num_steps"),
        (lambda: get_sampler(SamplerConfig(params={"eta": 2.0})), "eta must be in"),
        (lambda: get_sampler(SamplerConfig(params={"eta": "high"})), "'eta' must be a number"),
        (lambda: get_sampler(SamplerConfig(params={"snr": 0.1})), "has no parameter.*'snr'"),
        (lambda: ModelConfig(block_out_channels=(6, 8), norm_num_groups=4), "divisible"),
        (lambda: CaseConfig(n_gen=0), "n_gen"),
    ],
)
def test_bad_values_name_the_field(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


def test_case_id():
    case = CaseConfig(mitigation=MitigationConfig("cpsample", {"alpha": 0.1}))
    assert case.case_id == "ddim-digits64-cpsample(alpha=0.1)"
    # another split, x_p, training or sampling seed is another case, with its own id
    other = replace(
        case,
        data=replace(case.data, split_seed=1, saf_seed=2),
        train=replace(case.train, seed=3),
        seed=4,
    )
    assert other.case_id == "ddim-digits64-cpsample(alpha=0.1)~split1-saf2-train3-seed4"
    assert replace(case, seed=1).case_id == "ddim-digits64-cpsample(alpha=0.1)~seed1"
