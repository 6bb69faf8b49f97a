"""The project's own HHH prompt (hhh_prompt.txt): a preamble and example Human/Assistant dialogues, each followed
by a line of dashes. Any file of the same shape can be used instead (config.objective.prompt_file)."""

from __future__ import annotations

import os

import numpy as np
from hhh.data import vocab as vocab_lib

SEPARATOR = "\n-----\n"
DEFAULT_PROMPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hhh_prompt.txt")


def read(path: str = "") -> str:
  with open(path or DEFAULT_PROMPT, encoding="utf-8") as f:
    return f.read()


def split(text: str) -> tuple[str, list[str]]:
  """(preamble, dialogues) of a prompt file."""
  parts = text.split(SEPARATOR)
  return parts[0], [p for p in parts[1:] if p.strip()]


def fit(text: str, encode, max_tokens: int = 0) -> list[int]:
  """Token ids of the prompt, keeping the preamble and as many WHOLE dialogues (in file order) as fit in
  `max_tokens` (0: everything). Whole dialogues, because a prompt cut mid-dialogue shows broken behaviour."""
  preamble, dialogues = split(text)
  out = preamble + SEPARATOR
  ids = list(encode(out))
  if max_tokens and len(ids) > max_tokens:
    raise ValueError(f"the prompt preamble alone is {len(ids)} tokens, more than prompt_max_tokens={max_tokens}")
  for d in dialogues:
    longer = out + d + SEPARATOR
    longer_ids = list(encode(longer))
    if max_tokens and len(longer_ids) > max_tokens:
      break
    out, ids = longer, longer_ids
  return ids


def budget(max_len: int, reserved: int, max_tokens: int = 0, *, cap: bool = True) -> int:
  """Tokens the prompt may take (the `max_tokens` of `fit`): what the model's context (`max_len`) leaves after the
  `reserved` tokens of each row (evaluation and context distillation: seq_len; sampling: the row's context and its
  new tokens). A given `max_tokens` > 0 caps that (cap=True: evaluation's eval.prompt_max_tokens) or replaces it
  (cap=False: sampling's prompt_max_tokens, which the laboratory sets to the evaluation prompt's length)."""
  room = int(max_len) - int(reserved)
  if int(max_tokens) > 0:
    return min(room, int(max_tokens)) if cap else int(max_tokens)
  return room


def token_ids(path: str, vocab, max_tokens: int = 0) -> tuple[np.ndarray, int]:
  """(token ids of the prompt file `path` ("" = the project's prompt) fitted to `max_tokens` by `fit`, the token count
  of the whole file) in `vocab` (a vocabulary or its name): the one prompt of distillation, evaluation and sampling."""
  if isinstance(vocab, str):
    vocab = vocab_lib.get_vocabulary(vocab)
  text = read(os.path.expanduser(path) if path else "")
  encode = vocab.encode
  return np.asarray(fit(text, encode, max_tokens), np.int32), len(encode(text))
