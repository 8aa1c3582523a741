"""Where a request's model comes from: a TensorFlow checkpoint, or a model exported for OpenVINO.

`model_checkpoint_path` ending in .xml or .json names an exported model
(`engines.exported_model`), which runs on engine OPENVINO without TensorFlow;
anything else is a checkpoint, restored with TensorFlow (imported only then).
"""

from __future__ import annotations

import logging
from typing import Optional

from ffn.inference import inference_utils
from ffn.inference.engines import exported_model
from ffn.inference.request import plan as plan_lib
from ffn.utils import errors

# The engine that runs exported models.
EXPORTED_ENGINE = 'openvino'


def exported(plan: plan_lib.InferencePlan) -> Optional[exported_model.ExportedModel]:
  """The exported model that the plan names, checked against it; None for a checkpoint.

  Cheap (a JSON file and two digests), so that a bad request fails before any
  engine starts.
  """
  if not exported_model.is_exported(plan.model_checkpoint_path):
    return None
  if plan.engine != EXPORTED_ENGINE:
    raise exported_model.ExportedModelError(
        f'InferenceRequest.model_checkpoint_path {plan.model_checkpoint_path!r} is a model '
        f'exported for OpenVINO, which engine {plan.engine.upper()} cannot run; set engine: '
        f'{EXPORTED_ENGINE.upper()}, or give the TensorFlow checkpoint '
        f'({exported_model.load(plan.model_checkpoint_path).checkpoint_path!r})')
  model = exported_model.load(plan.model_checkpoint_path)
  exported_model.check_request(model, plan.model_name, plan.model_args)
  return model


def restore_checkpoint(model_name: str, model_args: str, checkpoint_path: str,
                       batch_size: Optional[int] = None):
  """(model, step): the TensorFlow model built from its name and args, checkpoint restored."""
  if not model_name:
    raise errors.FFNError('InferenceRequest.model_name must be set, '
                          'e.g. "convstack_3d.ConvStack3DFFNModel"')
  if not checkpoint_path:
    raise errors.FFNError('InferenceRequest.model_checkpoint_path must be set')
  # Imported here: only checkpoints need TensorFlow, and bad requests fail before it loads.
  # pylint: disable=g-import-not-at-top
  from ffn.training import checkpoint
  from ffn.training import import_util
  # pylint: enable=g-import-not-at-top
  model = import_util.build_model(model_name, model_args, batch_size=batch_size)
  step = checkpoint.restore_model(model, checkpoint_path)
  logging.info('Model %s restored from %s (step %s).', model_name, checkpoint_path, step)
  return model, step


def load(plan: plan_lib.InferencePlan, counters: inference_utils.Counters):
  """The plan's model: an ExportedModel for the OpenVINO engine, or a restored TensorFlow model."""
  model = exported(plan)
  if model is not None:
    logging.info('Model %s exported to %s (from %s, step %s): no TensorFlow needed.',
                 model.model_name, model.xml_path, model.checkpoint_path, model.checkpoint_step)
    return model
  with inference_utils.timer_counter(counters, 'restore-tf-checkpoint'):
    return restore_checkpoint(plan.model_name, plan.model_args, plan.model_checkpoint_path,
                              plan.batch_size)[0]
