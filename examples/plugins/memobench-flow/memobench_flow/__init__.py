"""memobench-flow: rectified flow / flow matching as a memobench model family plugin."""

from memobench_flow.family import LinearPath, RectifiedFlow

__all__ = ["LinearPath", "RectifiedFlow"]
