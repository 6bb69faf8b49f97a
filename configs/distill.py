"""Context distillation of the HHH prompt: the student (no prompt) matches the frozen initial model conditioned on
the prompt, by forward KL at every position of the text.

  online:  python -m hhh.train --config=configs/distill.py:tiny --config.init_from=LM_RUN --workdir=DIR
  offline: python tools/teacher_logits.py --config=configs/distill.py:tiny,offline --config.init_from=LM_RUN \
               --out=TEACHER_DIR
           python -m hhh.train --config=configs/distill.py:tiny,offline --config.init_from=LM_RUN \
               --config.objective.teacher_dir=TEACHER_DIR --workdir=DIR

Learning rate 0.05x pretraining, decayed linearly to 0 (paper). Data: `lab_distill` (half dialogues, half prose
after "Human:"). The prompt: hhh/prompts/hhh_prompt.txt or --config.objective.prompt_file=PATH. On the CPU sizes
the prompt keeps its preamble and as many whole dialogues as fit in max_len - seq_len tokens (max_len raised to
2048: ~1.9k tokens, 4 dialogues of the byte-level project prompt); the paper sizes take the whole prompt.
"""

from hhh import config as hc
from hhh import objectives
from hhh import prompts

DISTILL_LR_FACTOR = 0.05


def get_config(arg=None):
  size, rest = hc.size_and_variants(arg, "configs/distill.py:SIZE[,online|offline]", ([], ["online"], ["offline"]))
  c = hc.base_config(size)
  c.data.task = "lab_distill"
  c.optim.lr = c.optim.lr * DISTILL_LR_FACTOR
  c.optim.schedule, c.optim.end_lr_fraction = "linear", 0.0
  small = size in hc.CPU_SIZES
  if small:  # rotary positions: max_len is only a bound, so the CPU sizes can take a longer prompt than they train on
    c.model.max_len = max(int(c.model.max_len), 2048)
  c.objective = objectives.default_config("distill")
  c.objective.mode = rest[0] if rest else "online"
  c.objective.prompt_max_tokens = prompts.budget(c.model.max_len, c.data.seq_len) if small else 0
  c.objective.vocab = c.data.get_ref("vocab")
  return hc.finalize(c)
