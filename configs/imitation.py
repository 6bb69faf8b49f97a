"""Imitation learning: cross-entropy on the preferred responses only (context tokens carry no loss).

  python -m hhh.train --config=configs/imitation.py:tiny --workdir=DIR [--config.init_from=LM_RUN]

As a ranker the model scores a response by its mean per-token log-probability given the context
(hhh.scoring; tools/lab_check.py measures it on held-out comparisons).
"""

from hhh import config as hc


def get_config(arg=None):
  c = hc.base_config(hc.parse_arg(arg))
  c.objective.name = "imitation"
  c.data.task = "lab_imitation"
  return hc.finalize(c)
