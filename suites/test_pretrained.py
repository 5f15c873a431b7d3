"""Audit a model people already have: a diffusers checkpoint folder and its training data.

The cases live in ``benchmark/suites/test_pretrained.py``, which the installed
package carries (``memobench run`` runs them from there); this module collects
them for ``pytest suites``.
"""

from benchmark.suites.test_pretrained import *  # noqa: F403
