"""Errors that carry a message meant for the user (no stack trace needed to understand them)."""


class QuantbenchError(Exception):
    """A problem with the user's input or environment, explained in one message."""


class ConfigError(QuantbenchError):
    """A setting of the configuration that cannot work (the message names its key)."""


class ModelSourceError(QuantbenchError):
    pass


class DatasetError(QuantbenchError):
    pass


class ConversionError(QuantbenchError):
    pass


class UnsupportedError(QuantbenchError):
    """The precision cannot run on this device or installation (recorded, not raised past a job)."""
