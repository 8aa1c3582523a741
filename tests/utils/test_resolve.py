"""Names resolved to classes: a module is imported only once its source is seen to bind the name."""

from __future__ import annotations

import sys
import textwrap

import pytest

from ffn.utils import errors
from ffn.utils import resolve


@pytest.fixture
def package(tmp_path, monkeypatch):
  """A package `userpkg` whose modules record their import in `imported`."""
  root = tmp_path / 'userpkg'
  root.mkdir()
  (root / '__init__.py').write_text('import builtins\nbuiltins.imported = ["userpkg"]\n')
  record = 'import builtins\nbuiltins.imported.append(__name__)\n'
  (root / 'policies.py').write_text(record + textwrap.dedent('''
      class Mine:
        pass
      if True:
        Aliased = Mine
      try:
        from json import JSONDecoder as Decoder
      except ImportError:
        pass
      '''))
  (root / 'star.py').write_text(record + 'from userpkg.policies import *\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr('builtins.imported', [], raising=False)
  yield
  for name in [m for m in sys.modules if m.startswith('userpkg')]:
    del sys.modules[name]


def _imported():
  import builtins  # pylint: disable=g-import-not-at-top
  return builtins.imported


@pytest.mark.parametrize('name', ['userpkg.policies.Mine', 'userpkg.policies.Aliased',
                                  'userpkg.policies.Decoder', 'userpkg.star.Mine'])
def test_names_the_source_binds_are_imported(package, name):
  assert resolve.import_symbol(name).__name__ in ('Mine', 'JSONDecoder')


def test_a_module_without_the_name_is_never_imported(package):
  with pytest.raises(errors.FFNError, match="module 'userpkg.policies' has no 'Nope'"):
    resolve.import_symbol('userpkg.policies.Nope')
  assert _imported() == []  # Neither the package nor the module ran.
  with pytest.raises(errors.FFNError, match="module 'this' has no 'Foo'"):
    resolve.import_symbol('this.Foo')
  assert 'this' not in sys.modules


def test_modules_of_namespace_packages(tmp_path, monkeypatch):
  (tmp_path / 'nsroot' / 'inner').mkdir(parents=True)  # No __init__.py: namespace packages.
  (tmp_path / 'nsroot' / 'inner' / 'policy.py').write_text('class Found:\n  pass\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  try:
    assert resolve.import_symbol('nsroot.inner.policy.Found').__name__ == 'Found'
    with pytest.raises(errors.FFNError, match="module 'nsroot.inner.policy' has no 'Lost'"):
      resolve.import_symbol('nsroot.inner.policy.Lost')
  finally:
    for name in [m for m in sys.modules if m.startswith('nsroot')]:
      del sys.modules[name]


def test_default_packages_come_first():
  cls = resolve.import_symbol('movement.FaceMaxMovementPolicy', ('ffn.inference',))
  assert cls.__module__ == 'ffn.inference.policies.movement'
  with pytest.raises(errors.FFNError, match="no module 'ffn.inference.nosuch'; no module"):
    resolve.import_symbol('nosuch.Thing', ('ffn.inference',))


def test_long_names_are_cut():
  with pytest.raises(errors.FFNError) as caught:
    resolve.import_symbol('a' * 100_000 + '.B')
  assert len(str(caught.value)) < 1000 and 'characters]' in str(caught.value)
