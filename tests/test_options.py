"""The run options are declared once (benchmark/options.py): pytest's ``--memobench-*``
and ``memobench run``'s flags come from the same table, and both reach the same
``RunSettings``."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from benchmark import cli, pytest_plugin
from benchmark.errors import ConfigError
from benchmark.options import (
    BY_NAME,
    CLI_PREFIX,
    OPTIONS,
    PYTEST_PREFIX,
    check_values,
    given_values,
    run_settings,
    set_on_config,
)
from benchmark.settings import RunSettings
from benchmark.speed import Speed


class FakeConfig:
    """pytest's config as the plugin reads it: ``option`` and ``getoption``."""

    def __init__(self, argv: list[str]) -> None:
        parser = argparse.ArgumentParser()

        class Group:
            def addoption(self, *names, **kw):
                parser.add_argument(*names, **kw)

        class Parser:
            def getgroup(self, *_):
                return Group()

        pytest_plugin.pytest_addoption(Parser())
        self.option = parser.parse_args(argv)

    def getoption(self, name: str):
        return getattr(self.option, name.removeprefix("--").replace("-", "_"))


def cli_args(argv: list[str]) -> argparse.Namespace:
    return cli.parser().parse_args(["run", *argv])


def test_every_option_is_a_pytest_option_and_every_cli_one_a_run_flag():
    config = FakeConfig([])
    run_flags = {
        flag
        for action in cli.parser()._subparsers._group_actions[0].choices["run"]._actions
        for flag in action.option_strings
    }
    for o in OPTIONS:
        assert config.getoption(o.spelled(PYTEST_PREFIX)) == o.default, o.name
        assert (o.spelled(CLI_PREFIX) in run_flags) == o.cli, o.name
    assert "--no-tf32" in run_flags


def test_memobench_run_and_pytest_reach_the_same_settings():
    """The same values given to ``memobench run`` (passed to pytest as values, not flags)
    and to pytest as ``--memobench-*`` options make equal RunSettings."""
    given = ["--tier", "paper", "--rehearse", "--detector-steps", "5", "--no-tf32",
             "--batch-size", "8", "--precision", "bf16", "--n-gen", "12", "--reaudit",
             "--detector-min-accuracy", "0.5", "--tstar-curve",
             "--dataset", "bloodmnist"]  # fmt: skip
    values = given_values(cli_args(given))
    from_cli = FakeConfig([])
    set_on_config(from_cli, values)
    pytest_argv = [a.replace(CLI_PREFIX, PYTEST_PREFIX, 1) if a.startswith("--") else a
                   for a in given]  # fmt: skip
    from_pytest = FakeConfig(pytest_argv)
    a = run_settings(pytest_plugin.option_getter(from_cli))
    b = run_settings(pytest_plugin.option_getter(from_pytest))
    assert a == b
    assert (a.tier, a.detector_steps, a.batch_size, a.n_gen) == ("paper", 5, 8, 12)
    assert a.reaudit
    assert a.speed == Speed(precision="bf16", tf32=False) and a.rehearsal is not None
    assert a.smoke_dataset == "bloodmnist" and a.detector_min_accuracy == 0.5 and a.tstar_curve


def test_no_option_given_means_the_settings_defaults():
    settings = run_settings(pytest_plugin.option_getter(FakeConfig(["--memobench-device=cpu"])))
    assert settings == RunSettings(device="cpu")
    assert given_values(cli_args([])) == {}


def test_every_setting_can_be_set_from_the_command_line():
    """Each RunSettings field (but the cache's Cache object form) moves off its default
    with some option: none is reachable from Python only."""
    argv = ["--memobench-cache=/tmp/x", "--memobench-device=cpu", "--memobench-tier=paper",
            "--memobench-n-gen=3", "--memobench-data-root=/tmp/d", "--memobench-dataset=b",
            "--memobench-rehearse", "--memobench-inception-weights=w.pth",
            "--memobench-reaudit", "--memobench-compile", "--memobench-batch-size=2",
            "--memobench-train-precision=bf16", "--memobench-tstar-curve",
            "--memobench-detector-steps=9", "--memobench-detector-min-accuracy=0.1",
            "--memobench-feature-encoder=encoder.pt", "--memobench-seeds=2"]  # fmt: skip
    settings = run_settings(pytest_plugin.option_getter(FakeConfig(argv)))
    default = RunSettings()
    unchanged = [
        f.name
        for f in dataclasses.fields(RunSettings)
        if getattr(settings, f.name) == getattr(default, f.name) and f.name != "progress"
    ]
    assert unchanged == ["device"], unchanged  # cpu is the Python default, auto the options'


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("n-gen", 0, "n-gen must be >= 1, got 0"),
        ("detector-steps", 0, "detector-steps must be >= 1, got 0"),
        ("detector-min-accuracy", 1.5, "detector-min-accuracy must be in [0, 1], got 1.5"),
        ("batch-size", -1, "batch-size must be >= 1, got -1 (or leave it out"),
    ],
)
@pytest.mark.parametrize("prefix", [PYTEST_PREFIX, CLI_PREFIX])
def test_a_bad_value_names_the_option_as_the_user_spelled_it(name, value, message, prefix):
    values = {name: value}
    with pytest.raises(ConfigError) as err:
        check_values(lambda n: values.get(n, BY_NAME[n].default), prefix)
    assert str(err.value).startswith(prefix + message)


def test_memobench_run_refuses_a_bad_value_before_pytest_starts(capsys):
    assert cli.main(["run", "--detector-steps", "0"]) == 2
    assert "memobench: error: --detector-steps must be >= 1, got 0" in capsys.readouterr().err


pytest_plugins = ["pytester"]


@pytest.mark.parametrize("workers", [[], ["-n", "1"]])
def test_given_values_reach_the_tests_and_pytest_xdist_workers(pytester, workers):
    """``memobench run`` hands pytest its values (``GivenOptions``), not flags: they reach
    the tests in one process and in pytest-xdist workers, which parse the command line
    again and would otherwise see the defaults."""
    pytester.makepyfile(
        """
        def test_seen(request):
            opt = request.config.getoption
            assert opt("--memobench-tier") == "paper"
            assert opt("--memobench-n-gen") == 7
            assert opt("--memobench-detector-steps") == 3
            assert opt("--memobench-tf32") is False
        """
    )
    given = pytest_plugin.GivenOptions(
        {"tier": "paper", "n-gen": 7, "detector-steps": 3, "tf32": False}
    )
    result = pytester.runpytest(*workers, "-p", "no:cacheprovider", plugins=[given])
    result.assert_outcomes(passed=1)


def test_memobench_run_refuses_an_option_given_twice_and_a_bad_shard(capsys):
    assert cli.main(["run", "--", "--memobench-reaudit"]) == 2
    assert "pass it to memobench run as --reaudit" in capsys.readouterr().err
    assert cli.main(["run", "--shard", "5/4"]) == 2
    assert "memobench: error: --shard must be K/N" in capsys.readouterr().err


def test_a_torch_device_is_a_device_setting_too(tmp_path):
    import torch

    from benchmark.session import Session

    assert Session(tmp_path, device=torch.device("cpu")).device == torch.device("cpu")
