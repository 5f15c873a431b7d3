"""Wires the fixtures (``fixtures/``) into the suites and the tests.

The harness plugin itself (options, markers, results JSON) is
``benchmark.pytest_plugin``, loaded through its ``pytest11`` entry point.
"""

pytest_plugins = ["fixtures.session"]
