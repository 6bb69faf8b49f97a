"""Ranked preference modelling: -log sigmoid(r_better - r_worse - margin) over every pair of a K-way ranked list.

  python -m hhh.train --config=configs/preference.py:tiny --workdir=DIR [--config.init_from=LM_RUN]
  (margin: --config.objective.margin=0.5 [--config.objective.margin_mode=score_gap])

Default data: the embedded lab comparisons (`lab_compare`, K=4 ranked responses with ties).
"""

from hhh import config as hc
from hhh import objectives


def get_config(arg=None):
  c = hc.base_config(hc.parse_arg(arg))
  c.objective = objectives.default_config("preference")
  c.model.score_head = True
  c.data.task = "lab_compare"
  c.data.num_responses = 4
  if c.size == "cpu":  # the CPU benchmark size: microbatches of 4 comparisons per device (4 x K=4 x 128 = 2,048
    # tokens): 1,279 tokens/s vs 998 for the whole batch at once, PyTorch 1,133 in the same run (tools/bench.py
    # --grad_accum=1,2,4,8; docs/attention.md). The same update as one batch when every comparison has the same
    # number of valid pairs (grad_accum averages the microbatches' means).
    c.train.grad_accum, c.train.microbatch_per_device = 0, 4
  if c.size in hc.PAPER_SIZES:  # K=4 x 8192 tokens per device per microbatch: 52b needs tensor=2 (docs/scale.md)
    c.mesh.shape.tensor = hc.PAPER_TENSOR_PREFERENCE[c.size]
  return hc.finalize(c)
