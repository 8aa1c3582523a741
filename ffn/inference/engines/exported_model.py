"""An FFN model exported for OpenVINO: `<name>.xml` + `<name>.bin` and the `<name>.json` sidecar.

The sidecar holds what inference needs besides the network, so that a
request can run from the file without TensorFlow: the model's geometry
(`ModelInfo`), the model name and arguments, the checkpoint it was converted
from and its step, and SHA-256 digests of the .xml and .bin (a sidecar beside
another model's files is refused). A request names the model by its .xml (or
the sidecar) in `model_checkpoint_path`. This module reads and writes the
sidecar; it imports neither TensorFlow nor OpenVINO.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Optional

from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import model_info
from ffn.utils import resolve

FORMAT = 'ffn-openvino-model'
FORMAT_VERSION = 1
SUFFIXES = ('.xml', '.json')
# Short model names are looked up in this package (ffn.training.import_util's default).
_DEFAULT_MODEL_PACKAGE = 'ffn.training.models.'


class ExportedModelError(errors.FFNError):
  """An exported model file that is missing, damaged, or not the model the request names."""


@dataclasses.dataclass(frozen=True)
class ExportedModel:
  """An exported model: its files, geometry and the settings it was made with."""
  xml_path: str
  info: model_info.ModelInfo
  model_name: str
  model_args: dict[str, Any]
  checkpoint_path: str
  checkpoint_step: Optional[int]

  @property
  def bin_path(self) -> str:
    """The weights file beside the .xml."""
    return paths(self.xml_path)[1]


def is_exported(path: str) -> bool:
  """Whether `path` names an exported model (by its .xml or .json ending), not a checkpoint."""
  return os.fspath(path).lower().endswith(SUFFIXES)


def paths(path: str) -> tuple[str, str, str]:
  """(.xml, .bin, .json sidecar) of the exported model named by its .xml or sidecar."""
  stem, _ = os.path.splitext(os.fspath(path))
  return stem + '.xml', stem + '.bin', stem + '.json'


def _digest(path: str) -> str:
  """The SHA-256 hex digest of a file."""
  sha = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      sha.update(chunk)
  return sha.hexdigest()


def _read_sidecar(sidecar: str) -> Optional[dict[str, Any]]:
  """The sidecar's fields, or None if the file is not a sidecar of ours."""
  try:
    with open(sidecar, encoding='utf-8') as f:
      fields = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError):
    return None
  return fields if isinstance(fields, dict) and fields.get('format') == FORMAT else None


def is_ours(path: str) -> bool:
  """Whether the sidecar of the exported model at `path` exists and was written here."""
  return _read_sidecar(paths(path)[2]) is not None


def load(path: str) -> ExportedModel:
  """The exported model that `path` (.xml or sidecar) names, its files checked."""
  xml, weights, sidecar = paths(path)
  for what, name in (('model file', xml), ('weights file', weights), ('sidecar', sidecar)):
    if not os.path.isfile(name):
      raise ExportedModelError(f'exported model {errors.shown(path)}: its {what} {name!r} does '
                               'not exist (export it with ffn-export-model)')
  fields = _read_sidecar(sidecar)
  if fields is None:
    raise ExportedModelError(f'{sidecar!r} is not the sidecar of an exported FFN model (a JSON '
                             f'object with "format": "{FORMAT}"); export it with '
                             'ffn-export-model')
  if fields.get('format_version') != FORMAT_VERSION:
    raise ExportedModelError(f'{sidecar!r} has format version '
                             f'{errors.shown(fields.get("format_version"))}; this version of ffn '
                             f'reads version {FORMAT_VERSION}: export the model again')
  for name, key in ((xml, 'xml_sha256'), (weights, 'bin_sha256')):
    if _digest(name) != fields.get(key):
      raise ExportedModelError(f'{name!r} is not the file that {sidecar!r} describes (its '
                               'SHA-256 differs): the sidecar belongs to another model, or the '
                               'file changed since export; export the model again')
  try:
    geometry = fields['model_info']
    info = model_info.ModelInfo(
        **{key: model_info.as_xyz(geometry[key], key)
           for key in ('deltas', 'pred_mask_size', 'input_seed_size', 'input_image_size')},
        additive=bool(geometry.get('additive', False)))
    return ExportedModel(xml_path=xml, info=info, model_name=str(fields['model_name']),
                         model_args=dict(fields['model_args']),
                         checkpoint_path=str(fields['checkpoint_path']),
                         checkpoint_step=fields.get('checkpoint_step'))
  except (KeyError, TypeError, ValueError) as e:
    raise ExportedModelError(f'{sidecar!r} lacks a field of an exported FFN model or holds a '
                             f'bad one ({e}): export the model again') from e


def write_sidecar(xml: str, info: model_info.ModelInfo, model_name: str,
                  model_args: dict[str, Any], checkpoint_path: str,
                  checkpoint_step: Optional[int]) -> str:
  """Writes the sidecar of the .xml and .bin just saved (atomically, last); returns its path."""
  xml, weights, sidecar = paths(xml)
  fields = {
      'format': FORMAT, 'format_version': FORMAT_VERSION,
      'model_name': model_name, 'model_args': model_args,
      'checkpoint_path': checkpoint_path, 'checkpoint_step': checkpoint_step,
      'model_info': dataclasses.asdict(info),
      'xml_sha256': _digest(xml), 'bin_sha256': _digest(weights),
  }
  atomic.atomic_write_text(sidecar, json.dumps(fields, indent=2, sort_keys=True) + '\n')
  return sidecar


def _full_name(name: str) -> str:
  """A model name with its package, so that the short and the dotted spelling compare equal."""
  return name if name.startswith(_DEFAULT_MODEL_PACKAGE) else _DEFAULT_MODEL_PACKAGE + name


def check_request(model: ExportedModel, model_name: str, model_args: str) -> None:
  """Raises ExportedModelError if the request's model_name/model_args (where set) differ."""
  if model_name and _full_name(model_name) != _full_name(model.model_name):
    raise ExportedModelError(
        f'mismatched model: InferenceRequest.model_name {model_name!r} is not the model '
        f'exported in {model.xml_path!r} ({model.model_name!r}); leave model_name unset or '
        'give the exported one')
  args = resolve.parse_json_object(model_args, 'InferenceRequest.model_args')
  if model_args and args != model.model_args:
    raise ExportedModelError(
        f'mismatched model: InferenceRequest.model_args {json.dumps(args, sort_keys=True)} are '
        f'not those of the model exported in {model.xml_path!r} '
        f'({json.dumps(model.model_args, sort_keys=True)}); leave model_args unset or give the '
        'exported ones')
