"""bf16 sampling against fp32 on the smoke tier's memorizing model: what a GPU runner's.

The cases live in ``benchmark/suites/test_smoke_speed.py``, which the installed
package carries (``memobench run`` runs them from there); this module collects
them for ``pytest suites``.
"""

from benchmark.suites.test_smoke_speed import *  # noqa: F403
