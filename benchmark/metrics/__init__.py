"""The metric plugins (``CaseMetric``, ``benchmark/metrics/base.py``): what every audited case
records, with its leaderboard columns and case-page figures."""
