"""Python state (dicts, tuples, sets, deques, numpy values) as JSON text, without pickles.

Checkpoints hold nested containers of numbers and arrays. Pickling them would
let a crafted file run code on load; this codec writes the same values as
tagged JSON and reads back exactly the same types, and nothing else.
"""

from __future__ import annotations

import base64
import collections
import json
from typing import Any, Mapping, Optional

import numpy as np

from ffn.utils import errors


class StateCodecError(errors.FFNError):
  """A value cannot be encoded, or a text is not a state this codec wrote."""


def _encode(value: Any, named: Mapping[str, type]) -> Any:
  """The JSON-able form of `value`."""
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, np.generic):  # Before int/float: np.float64 is a float.
    return {'scalar': value.dtype.str, 'value': _encode(value.item(), named)}
  if isinstance(value, int):
    return value
  if isinstance(value, float):
    return {'float': repr(value)}
  if isinstance(value, np.ndarray):
    if value.dtype.hasobject:
      raise StateCodecError(f'cannot store an object array ({value.dtype}) without pickles')
    data = np.ascontiguousarray(value)
    return {'array': data.dtype.str, 'shape': list(data.shape),
            'data': base64.b64encode(data.tobytes()).decode('ascii')}
  for name, cls in named.items():
    if type(value) is cls:  # pylint: disable=unidiomatic-typecheck
      return {'named': name, 'items': [_encode(v, named) for v in value]}
  if isinstance(value, tuple):
    return {'tuple': [_encode(v, named) for v in value]}
  if isinstance(value, list):
    return [_encode(v, named) for v in value]
  if isinstance(value, (set, frozenset)):
    kind = 'set' if isinstance(value, set) else 'frozenset'
    return {kind: [_encode(v, named) for v in sorted(value, key=repr)]}
  if isinstance(value, collections.deque):
    return {'deque': [_encode(v, named) for v in value]}
  if isinstance(value, dict):
    return {'dict': [[_encode(k, named), _encode(v, named)] for k, v in value.items()]}
  raise StateCodecError(f'cannot store a {type(value).__name__} in a checkpoint: {value!r:.80}')


def _decode(value: Any, named: Mapping[str, type]) -> Any:
  """The Python value of a JSON form written by `_encode`."""
  if value is None or isinstance(value, (bool, str, int)):
    return value
  if isinstance(value, list):
    return [_decode(v, named) for v in value]
  if not isinstance(value, dict) or len(value) < 1:
    raise StateCodecError(f'unexpected {type(value).__name__} in stored state')
  if 'float' in value:
    return float(value['float'])
  if 'scalar' in value:
    return np.dtype(value['scalar']).type(_decode(value['value'], named))
  if 'array' in value:
    dtype = np.dtype(value['array'])
    if dtype.hasobject:
      raise StateCodecError('stored state holds an object array')
    data = base64.b64decode(value['data'])
    return np.frombuffer(data, dtype=dtype).reshape(value['shape']).copy()
  if 'named' in value:
    if value['named'] not in named:
      raise StateCodecError(f'stored state names an unknown type {value["named"]!r}')
    return named[value['named']](*(_decode(v, named) for v in value['items']))
  if 'tuple' in value:
    return tuple(_decode(v, named) for v in value['tuple'])
  if 'set' in value:
    return set(_decode(v, named) for v in value['set'])
  if 'frozenset' in value:
    return frozenset(_decode(v, named) for v in value['frozenset'])
  if 'deque' in value:
    return collections.deque(_decode(v, named) for v in value['deque'])
  if 'dict' in value:
    return {_decode(k, named): _decode(v, named) for k, v in value['dict']}
  raise StateCodecError(f'unexpected keys {sorted(value)} in stored state')


def dumps(value: Any, named: Optional[Mapping[str, type]] = None) -> str:
  """`value` as JSON text; `named` maps names to namedtuple classes to keep."""
  return json.dumps(_encode(value, named or {}))


def loads(text: str, named: Optional[Mapping[str, type]] = None) -> Any:
  """The value `dumps` wrote; raises StateCodecError for any other text."""
  try:
    form = json.loads(text)
  except (json.JSONDecodeError, RecursionError) as e:
    raise StateCodecError(f'stored state is not valid JSON: {e}') from None
  try:
    return _decode(form, named or {})
  except (KeyError, TypeError, ValueError, RecursionError) as e:
    if isinstance(e, StateCodecError):
      raise
    raise StateCodecError(f'stored state is malformed: {type(e).__name__}: {e}') from None
