"""The one base class of every failure the user can act on.

Each command catches :class:`UserError` once and prints its message as one ``error: ...`` line
with exit status 1, never a traceback. A module with such a failure subclasses it (keeping
``ValueError`` or ``RuntimeError`` beside it where callers catch those); nothing keeps a list.
This module imports nothing, so catching it costs no import.
"""


class UserError(Exception):
  """A failure the user can fix; the message says what went wrong, where, and what to do."""
