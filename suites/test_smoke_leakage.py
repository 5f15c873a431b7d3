"""Smoke tier: every model family x dataset (digits, or --memobench-dataset) x every mitigation.

The cases live in ``benchmark/suites/test_smoke_leakage.py``, which the installed
package carries (``memobench run`` runs them from there); this module collects
them for ``pytest suites``.
"""

from benchmark.suites.test_smoke_leakage import *  # noqa: F403
from benchmark.suites.test_smoke_leakage import _build_in_parallel  # noqa: F401  (autouse)
