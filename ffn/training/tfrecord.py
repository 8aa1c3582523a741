"""The coordinate record format: `tf.train.Example`s framed as GZIP TFRecords, in numpy.

Each record has an int64 `center` (global x, y, z) and a bytes
`label_volume_name` (COORDINATE_FEATURES, which the reader parses too), byte for
byte what `tf.train.Example(...).SerializeToString(deterministic=True)` gives
(map keys sorted: `center` first; without `deterministic`, protobuf's upb
runtime picks the map order per process, so upstream's files vary in that
order), but encoded for whole chunks of records at once with numpy, and framed
as TFRecords (length, masked CRC-32C, data, masked CRC-32C) in numpy too. The
file is gzip-compressed by ISA-L (`isal`, a dependency) in parallel threads.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

from isal import igzip_threaded
import numpy as np

from ffn.utils import atomic

# The record schema, shared by this writer and the training input reader:
# feature name -> (kind, shape).
CENTER = 'center'
VOLUME_NAME = 'label_volume_name'
COORDINATE_FEATURES = {CENTER: ('int64', (1, 3)), VOLUME_NAME: ('bytes', (1,))}


def _crc32c_table() -> np.ndarray:
  poly = 0x82F63B78  # Castagnoli, bit-reflected.
  table = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    table = np.where(table & 1, (table >> 1) ^ np.uint32(poly), table >> 1).astype(np.uint32)
  return table


_CRC_TABLE = _crc32c_table()


def _masked_crc32c_columns(matrix: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
  """Masked CRC-32C of every row of a uint8 matrix, skipping bytes where `valid` is False."""
  crc = np.full(matrix.shape[0], 0xFFFFFFFF, dtype=np.uint32)
  for j in range(matrix.shape[1]):
    updated = _CRC_TABLE[(crc ^ matrix[:, j]) & 0xFF] ^ (crc >> 8)
    crc = updated if valid is None else np.where(valid[:, j], updated, crc)
  crc ^= np.uint32(0xFFFFFFFF)
  return (((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)).astype(np.uint32)


def masked_crc32c(data: bytes) -> int:
  """The masked CRC-32C TFRecord stores beside a length or a record."""
  row = np.frombuffer(data, dtype=np.uint8)[np.newaxis]
  return int(_masked_crc32c_columns(row)[0])


def _varint(value: int) -> bytes:
  out = bytearray()
  value &= (1 << 64) - 1
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _name_entry(name: bytes) -> bytes:
  """The serialised `label_volume_name` map entry of Features (tag included)."""
  bytes_list = b'\x0a' + _varint(len(name)) + name
  feature = b'\x0a' + _varint(len(bytes_list)) + bytes_list
  key = VOLUME_NAME.encode()
  entry = b'\x0a' + _varint(len(key)) + key + b'\x12' + _varint(len(feature)) + feature
  return b'\x0a' + _varint(len(entry)) + entry


def _varint_length(values: np.ndarray) -> np.ndarray:
  """Bytes in the varint encoding of int64 values (negatives take 10, as in protobuf)."""
  u = values.astype(np.int64).view(np.uint64)
  lengths = np.ones(u.shape, dtype=np.int64)
  largest = int(u.max()) if u.size else 0
  for k in range(1, 10):
    if largest < 1 << (7 * k):
      break  # No value needs more bytes.
    lengths += u >= np.uint64(1 << (7 * k))
  return lengths


def _crc32c_raw_rows(matrix: np.ndarray) -> np.ndarray:
  """Unmasked CRC-32C of every row of a uint8 matrix."""
  crc = np.full(matrix.shape[0], 0xFFFFFFFF, dtype=np.uint32)
  for j in range(matrix.shape[1]):
    crc = _CRC_TABLE[(crc ^ matrix[:, j]) & 0xFF] ^ (crc >> 8)
  return crc ^ np.uint32(0xFFFFFFFF)


def _mask_crc(crc: np.ndarray) -> np.ndarray:
  crc = crc.astype(np.uint32)
  return (((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)).astype(np.uint32)


def serialize_example(center_xyz: Sequence[int], name: bytes) -> bytes:
  """One Example's bytes, written out field by field (the reference for the vectorised encoder)."""
  packed = b''.join(_varint(int(v)) for v in center_xyz)
  int64_list = b'\x0a' + _varint(len(packed)) + packed
  feature = b'\x1a' + _varint(len(int64_list)) + int64_list
  key = CENTER.encode()
  entry = b'\x0a' + _varint(len(key)) + key + b'\x12' + _varint(len(feature)) + feature
  features = b'\x0a' + _varint(len(entry)) + entry + _name_entry(name)
  return b'\x0a' + _varint(len(features)) + features


def frame_tfrecord(data: bytes) -> bytes:
  """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
  length = len(data).to_bytes(8, 'little')
  return (length + masked_crc32c(length).to_bytes(4, 'little') + data
          + masked_crc32c(data).to_bytes(4, 'little'))


@dataclasses.dataclass
class _Template:
  """A framed record with zeroed coordinate bytes, for one (volume, varint lengths) layout."""
  row: np.ndarray      # (width,) uint8, bytes at their padded-layout columns
  valid: np.ndarray    # (width,) bool, which columns belong to the record
  crc: int             # unmasked data CRC of the template
  tables: np.ndarray   # (3 * slot, 256) uint32: CRC change for each byte value per slot


class ExampleEncoder:
  """Encodes many (center, volume) records as framed, serialised Examples at once.

  Records with the same volume and the same varint lengths of x, y and z share a
  layout: a template in which only the coordinate bytes differ. Those bytes are
  filled in column-wise, and the data CRC follows from the template's CRC by
  linearity (CRC(t ^ d) = CRC(t) ^ CRC(d) ^ CRC(0)), one table look-up per byte.
  Records are laid out in fixed-width padded rows and compacted with a mask.
  """

  def __init__(self, names: Sequence[bytes]):
    self.names = [bytes(n) for n in names]
    self._entries = [_name_entry(n) for n in self.names]
    self._entry_width = max(len(e) for e in self._entries)
    max_features = 30 + 16 + self._entry_width
    self._prefix_width = 1 + len(_varint(max_features)) + 16
    self._cache: dict[tuple, _Template] = {}

  def _columns(self, slot: int) -> tuple[int, int, int, int]:
    """Start columns of the data, the coordinate slots, the name entry and the data CRC."""
    data = 12
    coords = data + self._prefix_width
    entry = coords + 3 * slot
    crc = entry + self._entry_width
    return data, coords, entry, crc

  def _template(self, vol: int, lengths: tuple[int, int, int], slot: int) -> _Template:
    key = (vol, lengths, slot)
    if key in self._cache:
      return self._cache[key]
    data_col, coords_col, entry_col, crc_col = self._columns(slot)
    width = crc_col + 4
    # Smallest value of each length: its bytes are overwritten, only the layout matters.
    sample = [0 if n == 1 else 1 << (7 * (n - 1)) for n in lengths]
    if any(n == 10 for n in lengths):
      sample = [-1 if n == 10 else v for n, v in zip(lengths, sample)]
    record = serialize_example(sample, self.names[vol])
    packed = sum(lengths)
    prefix_len = len(record) - packed - len(self._entries[vol])
    row = np.zeros(width, dtype=np.uint8)
    valid = np.zeros(width, dtype=bool)
    raw = np.frombuffer(record, dtype=np.uint8)
    prefix_start = coords_col - prefix_len
    row[prefix_start:coords_col] = raw[:prefix_len]
    valid[prefix_start:coords_col] = True
    data_positions = []  # position in the data of each coordinate slot column (or -1)
    position = prefix_len
    for c, n in enumerate(lengths):
      for k in range(slot):
        if k < n:
          valid[coords_col + c * slot + k] = True
          data_positions.append(position)
          position += 1
        else:
          data_positions.append(-1)
    entry = np.frombuffer(self._entries[vol], dtype=np.uint8)
    row[entry_col:entry_col + entry.size] = entry
    valid[entry_col:entry_col + entry.size] = True
    data_length = len(record)
    length_bytes = np.frombuffer(data_length.to_bytes(8, 'little'), dtype=np.uint8)
    row[:8] = length_bytes
    row[8:12] = np.frombuffer(int(_mask_crc(_crc32c_raw_rows(length_bytes[None]))[0]
                                  ).to_bytes(4, 'little'), dtype=np.uint8)
    valid[:12] = True
    valid[crc_col:] = True
    data = row[data_col:crc_col][valid[data_col:crc_col]]
    assert data.size == data_length
    base = int(_crc32c_raw_rows(data[None])[0])
    zero_crc = int(_crc32c_raw_rows(np.zeros((1, data_length), np.uint8))[0])
    tables = np.zeros((3 * slot, 256), dtype=np.uint32)
    probe = np.zeros((256, data_length), dtype=np.uint8)
    for s, q in enumerate(data_positions):
      if q < 0:
        continue
      probe[:, q] = np.arange(256)
      tables[s] = _crc32c_raw_rows(probe) ^ np.uint32(zero_crc)
      probe[:, q] = 0
    template = _Template(row, valid, base, tables)
    self._cache[key] = template
    return template

  def encode(self, centers_xyz: np.ndarray, name_index: np.ndarray) -> bytes:
    """TFRecord-framed records for (n, 3) int64 centres and (n,) indices into `names`."""
    return self.encode_array(centers_xyz, name_index).tobytes()

  def encode_array(self, centers_xyz: np.ndarray, name_index: np.ndarray) -> np.ndarray:
    """Like `encode`, as a flat uint8 array (saves a copy before compression)."""
    centers_xyz = np.asarray(centers_xyz, dtype=np.int64)
    name_index = np.asarray(name_index, dtype=np.int64)
    n = centers_xyz.shape[0]
    if n == 0:
      return np.zeros(0, dtype=np.uint8)
    lengths = _varint_length(centers_xyz)                        # (n, 3)
    slot = int(lengths.max())
    keys = name_index * 1000 + (lengths[:, 0] - 1) * 100 + (lengths[:, 1] - 1) * 10 + (
        lengths[:, 2] - 1)
    present = np.bincount(keys)
    unique_keys = np.flatnonzero(present)
    key_to_group = np.zeros(present.size, dtype=np.int64)
    key_to_group[unique_keys] = np.arange(unique_keys.size)
    group = key_to_group[keys]
    templates = [self._template(int(k // 1000), (int(k // 100 % 10) + 1, int(k // 10 % 10) + 1,
                                                 int(k % 10) + 1), slot) for k in unique_keys]
    rows = np.stack([t.row for t in templates])
    valids = np.stack([t.valid for t in templates])
    crc = np.array([t.crc for t in templates], dtype=np.uint32)[group]
    tables = np.stack([t.tables for t in templates]).reshape(-1)

    matrix = np.take(rows, group, axis=0)
    valid = np.take(valids, group, axis=0)
    _, coords_col, _, crc_col = self._columns(slot)
    u = centers_xyz.view(np.uint64)
    table_base = group * (3 * slot * 256)
    for c in range(3):
      for k in range(slot):
        byte = ((u[:, c] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        byte |= (lengths[:, c] > k + 1).astype(np.uint8) << 7
        s = c * slot + k
        matrix[:, coords_col + s] = byte
        crc ^= tables[table_base + s * 256 + byte]
    matrix[:, crc_col:crc_col + 4] = _mask_crc(crc).astype('<u4').view(np.uint8).reshape(n, 4)
    return matrix[valid]


def encode_tfrecords(centers_xyz: np.ndarray, name_index: np.ndarray,
                     names: Sequence[bytes]) -> bytes:
  """TFRecord-framed serialised Examples (`center`, `label_volume_name`) for many records.

  `centers_xyz` is (n, 3) int64, `name_index` (n,) indexes `names`.
  """
  return ExampleEncoder(names).encode(centers_xyz, name_index)


def write_tfrecord_gzip(path: str, chunks: Iterable, compression_level: int = 1,
                        workers: int = 2) -> int:
  """Writes TFRecord-framed chunks as one gzip file, atomically; returns the bytes written.

  ISA-L's threaded gzip writer deflates 1 MiB blocks in `workers` threads
  (levels 0-3; 1 by default) into one gzip member, as pigz does.
  """
  if not 0 <= compression_level <= 3:
    raise ValueError(f'ISA-L compression levels are 0 to 3, got {compression_level}')
  with atomic.atomic_open(path, 'wb') as f:
    with igzip_threaded.open(f, 'wb', compresslevel=compression_level,
                             threads=max(1, workers)) as gz:
      for chunk in chunks:
        gz.write(chunk)
    return f.tell()
