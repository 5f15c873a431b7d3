"""Model families: how each is built, trained (shared loop), sampled, saved and loaded."""

from benchmark.models.base import ModelFamily, SampleResult, TrainedModel

__all__ = ["ModelFamily", "SampleResult", "TrainedModel"]
