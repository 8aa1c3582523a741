"""The base class of every error this package raises on bad input."""


class FFNError(ValueError):
  """Bad input (a flag, a file, a proto field): the message names the value and what was expected."""
