"""The benchmark's cases: pytest modules the installed package carries, so ``memobench run``
runs them from any directory (a user's own repository, a CI runner) after ``pip install``.

The repository's top-level ``suites/`` re-exports each module, so ``pytest suites/...``
in a clone collects the same cases.
"""
