"""The commands' set-up (hhh.sample, hhh.chat, hhh.best_of_n): the prompts they read (`read_prompts`), each row's
context (`format_context`), the shared prefix (`prefix_ids`) and the Sampler of a trained run (`from_config`)."""

from __future__ import annotations

import json
import os
import re

from hhh import prompts
from hhh.core import paths
from hhh.core.errors import ConfigError
from hhh.data import dialogue
from hhh.data import vocab as vocab_lib
from hhh.run import model as run_model
from hhh.sampling.sampler import Sampler
from hhh.sampling.settings import Settings



def read_prompts(spec: str) -> list:
  """The prompts named by --config.prompts: a .jsonl file (a JSON string, or an object with "prompt", per line), any
  other existing file (one prompt per non-empty line), or else the text itself (one prompt)."""
  if not spec:
    raise ConfigError("--config.prompts is required: a .jsonl file, a text file (one prompt per line) or the prompt "
                      "text itself")
  path = paths.resolve(spec)
  if not os.path.isfile(path):
    # A value with no spaces that has a path separator or a file extension names a file: a typo must not be sampled
    # as the literal text "missing.tsv".
    looks_like_a_path = not any(c.isspace() for c in spec) and (
        "/" in spec or os.sep in spec or re.search(r"\.[A-Za-z0-9]{1,5}$", spec) is not None)
    if looks_like_a_path or os.path.isdir(path):
      raise ConfigError(f"prompts file {path} does not exist (or is not a file); to sample a text with no spaces "
                        f"that looks like a path, put it in a .txt file")
    return [spec]
  out = []
  with open(path, "rb") as f:
    for n, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8").rstrip("\n")
      except UnicodeDecodeError as e:
        raise ConfigError(f"prompts file {path}, line {n}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
      if not line.strip():
        continue
      if path.endswith(".jsonl"):
        try:
          rec = json.loads(line)
        except json.JSONDecodeError as e:
          raise ConfigError(f"prompts file {path}, line {n}: not JSON ({e})") from e
        if isinstance(rec, dict):
          if not isinstance(rec.get("prompt"), str):
            raise ConfigError(f"prompts file {path}, line {n}: an object needs a string field \"prompt\"")
          rec = rec["prompt"]
        if not isinstance(rec, str):
          raise ConfigError(f"prompts file {path}, line {n}: expected a JSON string or {{\"prompt\": ...}}")
        out.append(rec)
      else:
        out.append(line)
  if not out:
    raise ConfigError(f"prompts file {path} holds no prompts")
  return out


def format_context(text: str, fmt: str) -> str:
  """The row's context after the shared prefix: a human turn ("dialogue") or the text itself ("raw")."""
  if fmt == "dialogue":
    return dialogue.query(text)
  if fmt == "raw":
    return text
  raise ConfigError(f"format must be 'dialogue' or 'raw', got {fmt!r}")


def prefix_ids(config, vocab) -> tuple:
  """(token ids of the shared prefix or None, description) for config.prompt: hhh | none | PATH of a prompt file."""
  spec = str(config.prompt).strip()
  if spec.lower() in ("none", ""):
    return None, {"prompt": "none", "prompt_tokens": 0}
  path = "" if spec.lower() == "hhh" else paths.resolve(spec)
  if path and not os.path.isfile(path):
    raise ConfigError(f"prompt: {path} does not exist (use hhh, none or the path of a prompt file)")
  budget = prompts.budget(config.model.max_len, int(config.context_tokens) + int(config.max_new_tokens),
                          config.prompt_max_tokens, cap=False)
  if budget <= 0:
    raise ConfigError(f"no room for the shared prompt: model.max_len={int(config.model.max_len)} - context_tokens="
                      f"{int(config.context_tokens)} - max_new_tokens={int(config.max_new_tokens)} = {budget}; set "
                      f"prompt_max_tokens or use --config.prompt=none")
  try:
    ids, full = prompts.token_ids(path, vocab, budget)
  except ValueError as e:
    raise ConfigError(f"prompt {spec}: {e}") from e
  return ids, {"prompt": spec if path else "hhh", "prompt_tokens": len(ids), "prompt_tokens_full": full}


def from_config(config, *, devices=None) -> tuple:
  """(Sampler, Settings, info) for configs/sample.py: the run's parameters on the mesh (hhh.run.checkpoint's loader),
  the vocabulary and the shared prefix."""
  settings = Settings.from_config(config)
  format_context("", config.format)  # validates format
  if not config.checkpoint:
    raise ConfigError("--config.checkpoint is required: a training run's workdir (or a step folder) of an LM")
  checkpoint = paths.resolve(config.checkpoint)
  vocab = vocab_lib.get_vocabulary(config.data.vocab)
  if int(config.model.vocab_size) < vocab.vocab_size:
    raise ConfigError(f"model.vocab_size={int(config.model.vocab_size)} is smaller than the vocabulary "
                      f"{config.data.vocab!r} ({vocab.vocab_size} ids)")
  prefix, info = prefix_ids(config, vocab)
  ms, params = run_model.model_from_run(config.model, config.mesh, checkpoint, what="checkpoint", devices=devices)
  sampler = Sampler(ms.model, params, ms.mesh, ms.rules, vocab, prefix_tokens=prefix,
                    batch_size=int(config.batch_size))
  info = {"checkpoint": checkpoint, "size": config.size, "vocab": config.data.vocab, "format": config.format,
          **info}
  return sampler, settings, info
