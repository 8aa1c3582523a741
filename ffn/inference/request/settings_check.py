"""Whether a finished subvolume was made with the settings of the current request.

A result is reused when a run finds it on disk; if it was made with other
settings (another model, thresholds, seeds...) that reuse would silently return
the old answer, so the difference is reported and reuse needs consent.
"""

from __future__ import annotations

from typing import Optional

from google.protobuf import message

from ffn.inference import inference_pb2
from ffn.utils import errors

# Fields that change how a run is carried out, not its result.
_NOT_RESULT_FIELDS = ('segmentation_output_dir', 'concurrent_requests', 'batch_size',
                      'concurrent_objects', 'checkpoint_interval')

REUSE_FLAG = '--reuse_mismatched_results'


class SettingsMismatchError(errors.FFNError):
  """A finished result on disk was made with other settings than the current request."""


def _comparable(request: inference_pb2.InferenceRequest) -> inference_pb2.InferenceRequest:
  """A copy of `request` without the fields that do not affect the result."""
  copy = inference_pb2.InferenceRequest()
  copy.CopyFrom(request)
  for field in _NOT_RESULT_FIELDS:
    copy.ClearField(field)
  return copy


def differences(saved: inference_pb2.InferenceRequest,
                current: inference_pb2.InferenceRequest) -> list[str]:
  """Names of the result-affecting top-level fields that differ between two requests."""
  a, b = _comparable(saved), _comparable(current)
  return [f.name for f in a.DESCRIPTOR.fields if getattr(a, f.name) != getattr(b, f.name)]


def differences_of(saved_bytes: bytes, current: inference_pb2.InferenceRequest,
                   path: str) -> list[str]:
  """`differences` of the request serialised in file `path` and `current`."""
  saved = inference_pb2.InferenceRequest()
  try:
    saved.ParseFromString(bytes(saved_bytes))
  except message.DecodeError:
    raise SettingsMismatchError(f'{path} holds an unreadable request; remove it to '
                                'segment this box again') from None
  return differences(saved, current)


def check_saved_request(saved_bytes: Optional[bytes], current: inference_pb2.InferenceRequest,
                        path: str, reuse: bool) -> list[str]:
  """Raises SettingsMismatchError unless `path` was made with `current`'s settings or `reuse`.

  Returns the differing fields (empty when they match). A result without a
  saved request (written by other tools) cannot be checked and is reused.
  """
  if not saved_bytes:
    return []
  diff = differences_of(saved_bytes, current, path)
  if diff and not reuse:
    raise SettingsMismatchError(
        f'{path} exists but was made with other settings (differing: {", ".join(diff)}); '
        f'remove it to segment this box again, or pass {REUSE_FLAG} to keep it')
  return diff
