"""Exceptions that name what was wrong, the value seen, and what to do."""


class MemobenchError(Exception):
    """Base class of every error memobench raises on purpose."""


class ConfigError(MemobenchError, ValueError):
    """A configuration value is out of range or inconsistent."""


class UnknownNameError(MemobenchError, KeyError):
    """A registry was asked for a name nobody registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DuplicateNameError(MemobenchError, ValueError):
    """Two different objects were registered under one name."""


class CacheError(MemobenchError):
    """A cache entry is corrupt, truncated, or was written for another config."""


class DataError(MemobenchError):
    """A dataset file is missing, malformed, or too small for the request."""


class TooFewImagesError(DataError):
    """A dataset file is there and readable, but holds fewer images than asked for."""


class CheckpointError(MemobenchError):
    """A model checkpoint is missing, corrupt, or of another model family."""


class DeviceError(MemobenchError):
    """The requested device is not available."""
