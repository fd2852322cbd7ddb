"""Errors users can act on: each message names the file and line, or the setting to change."""


class IftSelectError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class ConfigError(IftSelectError):
    """A setting in params.yaml or on the command line is wrong."""


class DataError(IftSelectError):
    """An input file is malformed; the message names the file and line."""


class BudgetExceeded(IftSelectError):
    """The next request would take the run over ``max_cost_usd``."""
