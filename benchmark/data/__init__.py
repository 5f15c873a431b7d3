"""Datasets (members / held-out split) and the synthetic anatomic fingerprint."""

from benchmark.data.base import ImageDataset, load_dataset
from benchmark.data.saf import SAFInfo, apply_saf, saf_radius

__all__ = ["ImageDataset", "SAFInfo", "apply_saf", "load_dataset", "saf_radius"]
