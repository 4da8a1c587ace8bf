"""Errors that genssl reports to the user as one clear message (no traceback from the command line)."""


class GensslError(Exception):
    """Base class: a problem with the user's input or data, explained by its message."""


class ConfigError(GensslError, ValueError):
    """A configuration that does not satisfy the schema or a cross-key rule; the message names every key."""


class DatasetNotFoundError(GensslError, FileNotFoundError):
    """A dataset's source data is missing; the message names the dataset, the path and how to obtain the data."""


class CorruptImageError(GensslError):
    """An image that cannot be decoded; the message names the file."""


class StoreError(GensslError):
    """A store that is missing, of an unknown format, or whose files do not match their recorded hashes."""
