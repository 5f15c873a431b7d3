"""The contract every plugin must keep, run for every registered family and mitigation.

The cases live in ``benchmark/suites/test_contract.py``, which the installed
package carries (``memobench run`` runs them from there); this module collects
them for ``pytest suites``.
"""

from benchmark.suites.test_contract import *  # noqa: F403
