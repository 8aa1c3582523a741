"""Reading npz files whose object arrays hold pickles, without running code from them.

`np.load(..., allow_pickle=True)` lets a file call any importable function
(`os.system` through `__reduce__`). Files written by upstream FFN hold pickled
dicts of `OriginInfo` namedtuples, numpy arrays and scalars; this module reads
those through an unpickler that admits only numpy's array and scalar
reconstructors, builtin containers and the classes a caller names, and refuses
every other global before anything is called.

An entry is inflated only once its declared size is known to be sane: the
zip directory's size must fit the reader's byte limit (by default half of
this machine's memory), and a plain array's header must account for exactly
the bytes the entry holds. A crafted header or a zip bomb is then one error
naming the file, not an allocation that fails.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import os
import pickle
import zipfile
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from ffn.utils import errors

try:  # numpy 2
  from numpy._core.numeric import _frombuffer  # pylint: disable=g-import-not-at-top
except ImportError:  # numpy 1
  from numpy.core.numeric import _frombuffer  # pylint: disable=g-import-not-at-top


class UnsafePickleError(errors.FFNError):
  """A pickle in a data file names a global outside the admitted set."""


class BadNpzError(errors.FFNError):
  """A file is not a readable npz archive (truncated, corrupt or not a zip)."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
  """numpy's reconstructors under the module names numpy 1.x and 2.x write into pickles."""
  multiarray = np.ndarray.__reduce__(np.zeros(()))[0]  # numpy's own _reconstruct
  scalar = np.int64(0).__reduce__()[0]
  admitted = {}
  for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
    admitted[(module, '_reconstruct')] = multiarray
    admitted[(module, 'scalar')] = scalar
  for module in ('numpy.core.numeric', 'numpy._core.numeric'):
    admitted[(module, '_frombuffer')] = _frombuffer
  admitted[('numpy', 'ndarray')] = np.ndarray
  admitted[('numpy', 'dtype')] = np.dtype
  return admitted


_BUILTINS = {
    ('builtins', name): obj for name, obj in {
        'dict': dict, 'list': list, 'tuple': tuple, 'set': set, 'frozenset': frozenset,
        'int': int, 'float': float, 'complex': complex, 'bool': bool, 'str': str,
        'bytes': bytes, 'bytearray': bytearray,
    }.items()
}
_BUILTINS[('collections', 'OrderedDict')] = collections.OrderedDict
_BUILTINS[('collections', 'deque')] = collections.deque
# Protocol-2 pickles (Python 2 writers) spell bytes as _codecs.encode(text, 'latin1').
_BUILTINS[('_codecs', 'encode')] = lambda text, encoding='utf-8': text.encode(encoding)

_ADMITTED = {**_numpy_globals(), **_BUILTINS}


class RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that resolves only admitted (module, name) globals."""

  def __init__(self, file, extra_globals: Optional[Mapping[tuple[str, str], Any]] = None,
               source: str = 'pickle'):
    super().__init__(file, encoding='latin1')
    self._admitted = dict(_ADMITTED)
    self._admitted.update(extra_globals or {})
    self._source = source

  def find_class(self, module: str, name: str) -> Any:
    # Python 2 names (__builtin__.set) map as pickle itself maps them; the result is
    # still looked up in the admitted set.
    if (module, name) in _compat_pickle.NAME_MAPPING or module in _compat_pickle.IMPORT_MAPPING:
      module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
      module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    try:
      return self._admitted[(module, name)]
    except KeyError:
      raise UnsafePickleError(
          f'{self._source} holds a pickle naming {module}.{name}, which is not allowed in '
          'FFN data files (only numpy arrays and scalars, builtin containers and '
          'OriginInfo are); refusing to load it') from None


def loads(data: bytes, extra_globals: Optional[Mapping[tuple[str, str], Any]] = None,
          source: str = 'pickle') -> Any:
  """Unpickles `data`, admitting only numpy, builtin containers and `extra_globals`."""
  return RestrictedUnpickler(io.BytesIO(data), extra_globals, source).load()


def default_max_bytes() -> int:
  """The default limit on one inflated npz entry: half of this machine's physical memory."""
  try:
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2
  except (ValueError, OSError, AttributeError):  # No sysconf (Windows): a fixed 8 GiB.
    return 8 << 30


def _read_header(fp) -> tuple[tuple[int, ...], np.dtype]:
  """The (shape, dtype) of the .npy stream at `fp`, which is left just past the header."""
  version = np.lib.format.read_magic(fp)
  if version == (1, 0):
    shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
  else:
    shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
  return tuple(int(n) for n in shape), dtype


def _read_npy(fp, extra_globals, source: str) -> np.ndarray:
  """Reads one .npy stream; object arrays go through the restricted unpickler."""
  _, dtype = _read_header(fp)
  if not dtype.hasobject:
    fp.seek(0)
    return np.lib.format.read_array(fp, allow_pickle=False)
  array = RestrictedUnpickler(fp, extra_globals, source).load()
  if not isinstance(array, np.ndarray):
    raise UnsafePickleError(f'{source} holds a {type(array).__name__}, expected an array')
  return array


def _size(n: int) -> str:
  return f'{n:,} bytes'


class SafeNpzFile(Mapping[str, np.ndarray]):
  """An npz archive read lazily by key, with object arrays unpickled restrictedly.

  No entry larger than `max_bytes` once inflated is read (default:
  `default_max_bytes()`).
  """

  def __init__(self, path: str, extra_globals: Optional[Mapping[tuple[str, str], Any]] = None,
               max_bytes: Optional[int] = None):
    self.path = str(path)
    self._extra = extra_globals
    self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
    try:
      self._zip = zipfile.ZipFile(self.path)
      members = self._zip.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
      raise BadNpzError(f'{self.path} is not a readable npz file ({e})') from None
    self.files = [m[:-4] for m in members if m.endswith('.npy')]

  def _check_declared_size(self, key: str, source: str) -> None:
    """Refuses an entry whose declared sizes exceed the limit or disagree with each other."""
    info = self._zip.getinfo(key + '.npy')
    if info.file_size > self.max_bytes:
      raise BadNpzError(f'{source} declares {_size(info.file_size)} once inflated, more than '
                        f'the {_size(self.max_bytes)} allowed here; refusing to inflate it')
    with self._zip.open(info) as member:
      header = io.BytesIO(member.read(min(info.file_size, 1 << 16)))
    shape, dtype = _read_header(header)
    if dtype.hasobject:
      return  # A pickle's size is its entry's size, checked above.
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared != info.file_size - header.tell():
      raise BadNpzError(f'{source} is corrupt: its header declares shape {shape} of {dtype} '
                        f'({_size(declared)}) but the entry holds '
                        f'{_size(info.file_size - header.tell())} of data')

  def __getitem__(self, key: str) -> np.ndarray:
    if key not in self.files:
      raise KeyError(f'{key} is not a file in the archive {self.path}')
    source = f'{self.path} (entry {key!r})'
    try:
      self._check_declared_size(key, source)
      with self._zip.open(key + '.npy') as member:
        return _read_npy(io.BytesIO(member.read()), self._extra, source)
    except (UnsafePickleError, BadNpzError):
      raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, pickle.UnpicklingError,
            TypeError, AttributeError, IndexError) as e:
      raise BadNpzError(f'{source} is corrupt or truncated ({type(e).__name__}: {e})') from None

  def __iter__(self) -> Iterator[str]:
    return iter(self.files)

  def __len__(self) -> int:
    return len(self.files)

  def __contains__(self, key: object) -> bool:
    return key in self.files

  def close(self) -> None:
    """Closes the archive."""
    self._zip.close()

  def __enter__(self) -> 'SafeNpzFile':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def load_npz(path: str, extra_globals: Optional[Mapping[tuple[str, str], Any]] = None,
             max_bytes: Optional[int] = None) -> SafeNpzFile:
  """Opens an npz for reading; object entries admit only numpy, builtins and `extra_globals`.

  `max_bytes` bounds each inflated entry (see SafeNpzFile).
  """
  try:
    return SafeNpzFile(path, extra_globals, max_bytes)
  except FileNotFoundError:
    raise
  except OSError as e:
    raise BadNpzError(f'cannot read {path}: {e.strerror or e}') from None
