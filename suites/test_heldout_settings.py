"""Validation tier: the smoke suite's tuned settings on a model they were not tuned on.

The cases live in ``benchmark/suites/test_heldout_settings.py``, which the installed
package carries; this module collects them for ``pytest suites``.
"""

from benchmark.suites.test_heldout_settings import *  # noqa: F403
from benchmark.suites.test_heldout_settings import _build_in_parallel  # noqa: F401  (autouse)
