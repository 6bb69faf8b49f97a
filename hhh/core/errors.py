"""Errors whose message says everything a user needs (what is wrong, which key or path, what to do).

The commands (`hhh.cli.run`) print these as one `error:` line and exit 1 without a traceback (HHH_TRACEBACK=1
shows it); any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Mixin: a user-facing error (bad config value, held workdir, corrupt checkpoint, full disk, NaN loss)."""


class ConfigError(UserError, ValueError):
  """A config value that cannot work; the message names the key."""


class DataError(UserError, ValueError):
  """Data that cannot be used (missing files, no records left after the counted exclusions); the message names it."""
