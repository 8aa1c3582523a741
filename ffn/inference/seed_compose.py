"""Seed policies made of other policies, and the one lookup of a seed policy by name.

`policy_class` resolves every policy of `seed`, `seed_intensity` and this
module, so that InferenceRequest.seed_policy and the composite policies
below accept the same names.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from ffn.inference import seed
from ffn.inference import seed_intensity


def _policies() -> dict[str, type]:
  """Every seed policy class by name."""
  found = {}
  for namespace in (vars(seed), vars(seed_intensity), globals()):
    for name, value in namespace.items():
      if (isinstance(value, type) and issubclass(value, seed.BaseSeedPolicy)
          and value is not seed.BaseSeedPolicy and not name.startswith('_')):
        found[name] = value
  return found


def policy_class(name: str, field: str = 'InferenceRequest.seed_policy') -> type:
  """The seed policy class called `name`; ValueError naming `field` and the known names."""
  policies = _policies()
  if name not in policies:
    raise ValueError(f'{field} {name!r} is not a seed policy; expected one of '
                     f'{sorted(policies)}')
  return policies[name]


class ReverseCoords(seed.BaseSeedPolicy):
  """The seeds of another policy (`policy_to_reverse`, built with the other arguments), last first."""

  def __init__(self, canvas, policy_to_reverse: str, **policy_kwargs):
    super().__init__(canvas)
    cls = policy_class(policy_to_reverse, 'ReverseCoords policy_to_reverse')
    self._policy = cls(canvas, **policy_kwargs)

  def init_coords(self) -> None:
    self.coords = np.array(list(self._policy), np.int64).reshape(-1, 3)[::-1]


class SequentialPolicies(seed.BaseSeedPolicy):
  """The seeds of several policies one after the other: `policies` is [[name, kwargs], ...].

  The chain is computed when the first seed is asked for (after the canvas's
  initial segmentation is in place); its progress is saved as one list, so a
  restored run continues where it stopped.
  """

  def __init__(self, canvas, policies: Sequence[Sequence[Any]], **kwargs):
    del kwargs  # The Runner's corner and subvol_size go to no member policy, as upstream.
    super().__init__(canvas)
    self._policies = []
    for entry in policies:
      if len(entry) != 2 or not isinstance(entry[1], dict):
        raise ValueError(f'SequentialPolicies policies entry {entry!r} is not '
                         '[policy name, {keyword arguments}]')
      name, kwargs = entry
      self._policies.append(policy_class(name, 'SequentialPolicies policy')(canvas, **kwargs))

  def init_coords(self) -> None:
    self.coords = np.array(list(itertools.chain(*self._policies)), np.int64).reshape(-1, 3)
