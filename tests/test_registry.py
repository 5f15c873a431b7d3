import pytest

from benchmark import registry
from benchmark.errors import DuplicateNameError, UnknownNameError
from benchmark.registry import Registry


def test_builtins_come_from_entry_points():
    assert {"ddim", "dummy"} <= set(registry.models.names())
    assert "none" in registry.mitigations.names()
    assert {"digits", "pathmnist", "chestmnist"} <= set(registry.datasets.names())
    assert registry.models.get("ddim").name == "ddim"


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownNameError) as err:
        registry.models.get("ddmi")
    msg = str(err.value)
    assert "'ddmi'" in msg and "ddim" in msg and "memobench.models" in msg


def test_decorator_lazy_and_duplicate():
    reg: Registry[object] = Registry("widget", "memobench.test-widgets")

    @reg.register("a")
    class A:
        pass

    reg.register("path", "collections:OrderedDict")
    assert reg.get("a") is A
    from collections import OrderedDict

    assert reg.get("path") is OrderedDict
    reg.register("a", A)  # the same object again is fine
    with pytest.raises(DuplicateNameError, match="registered twice"):
        reg.register("a", object)


def test_broken_lazy_target_is_reported():
    reg: Registry[object] = Registry("widget", "memobench.test-widgets")
    reg.register("gone", "no_such_module_xyz:thing")
    with pytest.raises(UnknownNameError, match="cannot be imported"):
        reg.get("gone")
