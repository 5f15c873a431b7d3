"""The identity mitigation: sample the model as it is."""

from benchmark.mitigations.base import Mitigation


class NoMitigation(Mitigation):
    name = "none"
