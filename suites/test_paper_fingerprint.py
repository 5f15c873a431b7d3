"""Paper tier: the seed paper's fingerprint audit settings (Dombrowski & Kainz, 2023).

The cases live in ``benchmark/suites/test_paper_fingerprint.py``, which the installed
package carries (``memobench run`` runs them from there); this module collects
them for ``pytest suites``.
"""

from benchmark.suites.test_paper_fingerprint import *  # noqa: F403
