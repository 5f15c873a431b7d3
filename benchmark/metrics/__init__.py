"""Metrics: torchmetrics-style classes (state, update/compute, higher_is_better)."""
