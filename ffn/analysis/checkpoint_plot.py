"""A PNG plot of one checkpoint-selection metric against the training step."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import matplotlib
matplotlib.use('Agg')  # Files only: no display is needed or wanted.
from matplotlib import pyplot  # pylint: disable=g-import-not-at-top,wrong-import-position

from ffn.utils import atomic


def write_metric_plot(path: str, rows: Sequence[dict[str, Any]], metric: str,
                      best: Optional[dict[str, Any]]) -> None:
  """Writes `metric` of each row against its step to `path` (PNG), the best row marked."""
  points = [(r['step'], r[metric]) for r in rows if r.get(metric) is not None]
  figure, ax = pyplot.subplots(figsize=(6, 4), dpi=100)
  try:
    if points:
      steps, values = zip(*points)
      ax.plot(steps, values, 'o-', color='tab:blue', label=metric)
    if best is not None and best.get(metric) is not None:
      ax.plot([best['step']], [best[metric]], '*', color='tab:red', markersize=16,
              label=f'best: step {best["step"]}')
    ax.set_xlabel('training step')
    ax.set_ylabel(metric)
    ax.set_title(f'{metric} of each checkpoint on the validation box')
    ax.grid(True, alpha=0.3)
    ax.legend()
    figure.tight_layout()
    with atomic.atomic_path(path, suffix='.png') as tmp:
      figure.savefig(tmp, format='png')
  finally:
    pyplot.close(figure)
