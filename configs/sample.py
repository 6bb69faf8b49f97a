"""Sampling and chat: generate from a trained LM on the training mesh (docs/sampling.md).

  python -m hhh.sample --config=configs/sample.py:SIZE --config.checkpoint=RUN --config.prompts=FILE_OR_TEXT \
      [--config.prompt=hhh|none|PATH] [--config.temperature=0.7] [--config.top_p=0.9] --out=samples.jsonl
  python -m hhh.chat --config=configs/sample.py:SIZE --config.checkpoint=RUN [--config.prompt=none]
  python -m hhh.best_of_n --config=configs/sample.py:SIZE --config.checkpoint=RUN --config.pm_checkpoint=PM_RUN \
      --config.prompts=FILE_OR_TEXT --config.best_of=8 [--config.judge_checkpoint=OTHER_PM_RUN] --out=best.jsonl

The model config is the size's (as in training and evaluation): a run trained with `--config.model.*` overrides is
sampled with the same overrides. Stop strings are a tuple of Python strings:
--config.stop="('\\n\\nHuman:', '\\n-----')"; --config.stop="()" disables them.
"""
from hhh import config as hc
from hhh.data import dialogue


def get_config(arg=None):
  c = hc.base_config(hc.parse_arg(arg))
  small = c.size in hc.CPU_SIZES
  if small:  # rotary positions: max_len only bounds the context, so the CPU sizes take the HHH prompt (as eval)
    c.model.max_len = max(int(c.model.max_len), 2048)
  c.checkpoint = ""  # the LM: a run's workdir, its checkpoints/ folder or a step folder
  c.prompts = ""  # a .jsonl file ({"prompt": ...} or a JSON string per line), a text file (a prompt per line) or text
  c.format = "dialogue"  # dialogue: each prompt is the human's turn, "\n\nHuman: {p}\n\nAssistant:"; raw: as given
  c.prompt = "hhh"  # shared prefix, prefilled once: hhh (hhh/prompts/hhh_prompt.txt) | none | PATH of a prompt file
  # Tokens of the shared prefix; 0 = model.max_len - context_tokens - max_new_tokens. The preamble and as many whole
  # dialogues as fit are kept (hhh.prompts.fit, as evaluation and context distillation do).
  c.prompt_max_tokens = 0
  c.context_tokens = 512 if small else 2048  # room kept for each row's own context when sizing the prefix
  c.max_new_tokens = 128 if small else 256
  c.temperature = 1.0  # 0 = greedy
  c.top_k = 0  # 0 = off
  c.top_p = 1.0  # 1 = off (nucleus sampling below 1)
  c.num_samples = 1  # samples per prompt
  c.stop = (dialogue.HUMAN_TURN,)  # stop strings, cut from the returned text; generation also stops at end-of-sequence
  c.batch_size = 16 if small else 32  # rows (prompts x samples) per compiled decode; padded to the data-parallel size
  # hhh.best_of_n: candidates per draw ranked by the preference model at pm_checkpoint (its run's architecture); a
  # second PM at judge_checkpoint compares the chosen response with an independent single sample (win rate).
  c.best_of = 4
  c.pm_checkpoint = ""
  c.judge_checkpoint = ""
  c.chunk = 8  # hhh.chat: tokens per compiled decode call (streaming granularity)
  return hc.finalize(c)
