"""Finding a class by its name, and reading JSON-object arguments: the one place for each."""

from __future__ import annotations

import importlib
import json
from typing import Any, Optional, Sequence

from ffn.utils import errors


def import_symbol(name: str, default_packages: Sequence[str] = (), what: str = 'name') -> Any:
  """`module.Symbol` looked up under each of `default_packages` first, then as a full path.

  `what` names the setting in errors (e.g. "model").
  """
  if not isinstance(name, str) or '.' not in name.strip('.'):
    raise errors.FFNError(f'{what} {name!r} must be [package.]module.Symbol')
  module_name, symbol = name.rsplit('.', 1)
  failures = []
  for candidate in [f'{p}.{module_name}' for p in default_packages] + [module_name]:
    try:
      module = importlib.import_module(candidate)
    except ModuleNotFoundError as e:
      # Only a missing candidate module means "try the next one"; a module that
      # exists but fails to import is a real error and propagates.
      if e.name is not None and candidate.startswith(e.name):
        failures.append(f'no module {candidate!r}')
        continue
      raise
    if hasattr(module, symbol):
      return getattr(module, symbol)
    failures.append(f'module {candidate!r} has no {symbol!r}')
  raise errors.FFNError(f'unknown {what} {name!r}: ' + '; '.join(failures))


def parse_json_object(text: Optional[str | dict], what: str,
                      example: str = '') -> dict[str, Any]:
  """The dict of a JSON-object setting named `what` (empty or None gives {})."""
  if text is None or (isinstance(text, str) and not text.strip()):
    return {}
  if isinstance(text, dict):
    return dict(text)
  try:
    parsed = json.loads(text)
  except json.JSONDecodeError as e:
    raise errors.FFNError(f'{what} {text!r} is not valid JSON: {e}') from e
  if not isinstance(parsed, dict):
    hint = f', e.g. {example}' if example else ''
    raise errors.FFNError(f'{what} {text!r} must be a JSON object{hint}')
  return parsed
