"""Exports a TensorFlow checkpoint once as an OpenVINO model, for workers without TensorFlow.

Writes `<output>.xml` and `.bin` (float32 weights: the precision stays a
compile hint of each request) and the `.json` sidecar (`exported_model`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from ffn.inference.engines import exported_model
from ffn.inference.engines import openvino_engine
from ffn.inference.request import model_source
from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import resolve


def check_output(output: str) -> str:
  """The .xml path to write; refuses a name that is not .xml, or files not exported here."""
  if not os.fspath(output).lower().endswith('.xml'):
    raise exported_model.ExportedModelError(
        f'--output {errors.shown(output)} must name the .xml file to write (its .bin and .json '
        'sidecar go beside it), e.g. models/fib25/exported/model.xml')
  xml, weights, sidecar = exported_model.paths(atomic.resolve_output(output))
  present = [p for p in (xml, weights, sidecar) if os.path.exists(p)]
  if present and not exported_model.is_ours(xml):
    raise exported_model.ExportedModelError(
        f'{", ".join(map(repr, present))} exist(s) and {sidecar!r} is not the sidecar of an '
        'exported FFN model: refusing to overwrite files not written by ffn-export-model; '
        'choose another --output or remove them')
  atomic.check_writable_directory(os.path.dirname(xml), '--output directory')
  return xml


def export_model(model_name: str, model_args: str, checkpoint_path: str,
                 output: str) -> exported_model.ExportedModel:
  """Restores the checkpoint, converts it to OpenVINO and writes the files at `output` (.xml)."""
  if exported_model.is_exported(checkpoint_path):
    raise exported_model.ExportedModelError(
        f'model_checkpoint_path {errors.shown(checkpoint_path)} is an exported model already; '
        'export from the TensorFlow checkpoint it was made from')
  xml = check_output(output)
  args = resolve.parse_json_object(model_args, 'model_args')
  start = time.perf_counter()
  # Imported here: resolving the prefix needs TensorFlow, which restoring loads anyway.
  from ffn.training import checkpoint  # pylint: disable=g-import-not-at-top
  model, step = model_source.restore_checkpoint(model_name, model_args, checkpoint_path)
  prefix = checkpoint.resolve_checkpoint_path(checkpoint_path)
  converted = openvino_engine.convert(model)
  import openvino  # pylint: disable=g-import-not-at-top
  _, weights, sidecar = exported_model.paths(xml)
  # The sidecar goes first and comes back last: files without one are never taken as ours.
  with contextlib.suppress(FileNotFoundError):
    os.remove(sidecar)
  with atomic.atomic_path(xml, suffix='.xml') as tmp_xml:
    tmp_bin = os.path.splitext(tmp_xml)[0] + '.bin'
    try:
      openvino.save_model(converted, tmp_xml, compress_to_fp16=False)
      os.replace(tmp_bin, weights)
    finally:
      with contextlib.suppress(FileNotFoundError):
        os.remove(tmp_bin)
  exported_model.write_sidecar(xml, model.info, model_name, args, prefix, step)
  logging.info('Exported %s (step %s) to %s in %.1f s.', prefix, step, xml,
               time.perf_counter() - start)
  return exported_model.load(xml)
