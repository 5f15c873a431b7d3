"""Wires the repository's own fixtures (``fixtures/``) into its tests.

The harness plugin (options, markers, results JSON) and the ``memobench_session``
fixture the suites use are ``benchmark.pytest_plugin``, loaded through its
``pytest11`` entry point, so an installed package and a user's own test files
have them too; ``fixtures/`` holds what only this repository's tests need.
"""

pytest_plugins = ["fixtures.user_model"]
