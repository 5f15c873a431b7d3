"""A release gate over an audit's record: ``--fail-if "carlini_l2 > 0"``.

A rule is ``KEY OP VALUE``: any key of the record (``memobench schema`` lists them),
one of ``> >= < <= == !=``, and a number (or ``true``/``false``, or a quoted
string for a text entry). ``violations(rules, record)`` gives one line per rule the
record breaks; a CI job exits 1 when there is any, so a team can block the release
of a model that reproduces its training images. A rule whose key the record does
not hold (a metric that was skipped, with its reason) is a violation too: a gate
must not pass because nothing was measured.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from benchmark.errors import ConfigError
from benchmark.metrics.base import metric_classes, schema
from benchmark.record import METRIC_SKIPPED, resolve

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
       "==": operator.eq, "!=": operator.ne}  # fmt: skip
_RULE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")


@dataclass(frozen=True)
class Rule:
    """``key op value``: the record fails the gate when ``record[key] op value`` holds."""

    key: str
    op: str
    value: float | bool | str
    text: str

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``"carlini_l2 > 0"`` -> Rule.

        Raises:
            ConfigError: not ``KEY OP VALUE``, naming the rule and an example.
        """
        match = _RULE.match(text)
        if not match:
            raise ConfigError(
                f"--fail-if {text!r}: write KEY OP VALUE with OP one of "
                f'{" ".join(OPS)}, e.g. --fail-if "carlini_l2 > 0"'
            )
        key, op, raw = match.groups()
        return cls(key, op, _value(raw, text), text.strip())

    def broken_by(self, record: dict[str, Any]) -> str | None:
        """Why ``record`` fails this rule, in one line, or None when it passes."""
        if self.key not in record or record[self.key] is None:
            skipped = _skip_reason(self.key, record)
            why = f" ({skipped})" if skipped else ""
            return f"{self.text}: {self.key} was not measured{why}, so the gate cannot pass"
        got = record[self.key]
        if isinstance(got, (list, dict)):
            return f"{self.text}: {self.key} holds a {type(got).__name__}, not one value"
        if isinstance(self.value, str) != isinstance(got, str):
            return f"{self.text}: {self.key} is {got!r}, not comparable with {self.value!r}"
        if isinstance(got, float) and math.isnan(got):
            return f"{self.text}: {self.key} is NaN, so the gate cannot pass"
        if OPS[self.op](got, self.value):
            return f"{self.text}: {self.key} = {_show(got)}"
        return None


def _value(raw: str, text: str) -> float | bool | str:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"--fail-if {text!r}: {raw!r} is not a number, true/false or a quoted string"
        ) from None
    if not math.isfinite(value):
        raise ConfigError(f"--fail-if {text!r}: compare with a finite number, not {raw!r}")
    return value


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _skip_reason(key: str, record: dict[str, Any]) -> str | None:
    """Why the metric that declares ``key`` did not measure it (``<metric>_skipped``)."""
    for cls in metric_classes():
        if resolve(key, cls.fields) is not None:
            return record.get(METRIC_SKIPPED(metric=cls.name))
    return None


def parse_rules(texts: Iterable[str]) -> list[Rule]:
    """The rules, each key checked against the record's schema (``memobench schema``):
    a misspelt key is refused here rather than failing every case as unmeasured.

    Raises:
        ConfigError: a malformed rule, or a key no metric, plugin included, declares.
    """
    rules = [Rule.parse(t) for t in texts]
    declared = schema()
    for rule in rules:
        if resolve(rule.key, declared) is None:
            raise ConfigError(
                f"--fail-if {rule.text!r}: no record holds {rule.key!r}; `memobench schema` "
                f"lists the keys"
            )
    return rules


def violations(rules: Iterable[Rule], record: dict[str, Any]) -> list[str]:
    """One line per rule ``record`` breaks (empty: the record passes the gate)."""
    return [why for rule in rules if (why := rule.broken_by(record)) is not None]
