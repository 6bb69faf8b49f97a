"""User paths, resolved once where they enter: `~` expanded and made absolute against the current directory.

orbax (and anything that changes directory later) needs absolute paths, and a run's records should name the files
it used unambiguously. Remote paths (`gs://...`, any `scheme://`) pass through unchanged. `train`, `evaluate`,
`run_lab` and the tools call `resolve` / `resolve_config` on what the user gave them before using it.
"""

from __future__ import annotations

import os

import ml_collections

# Config fields that hold paths (dotted; absent ones are skipped). `data.vocab` is handled separately ("spm:PATH",
# "hf:PATH").
CONFIG_PATHS = ("init_from", "checkpoint", "pm_checkpoint", "judge_checkpoint", "distilled_checkpoint",
                "objective.prompt_file", "objective.teacher_dir")


# This checkout: the directory holding hhh/ and configs/ (the lab's and the commands' config files, the BIG-bench
# data beside it in ../shared).
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS_DIR = os.path.join(CHECKOUT, "configs")


def is_remote(path: str) -> bool:
  return "://" in str(path)


def resolve(path: str | os.PathLike | None) -> str:
  """`path` with `~` expanded and made absolute; "" and None stay ""; remote paths are returned as given."""
  if path is None or str(path) == "":
    return ""
  path = str(path)
  if is_remote(path):
    return path
  return os.path.abspath(os.path.expanduser(path))


def _get(config: ml_collections.ConfigDict, dotted: str):
  node = config
  for part in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return None
    node = node[part]
  return node


def _set(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  *parents, last = dotted.split(".")
  node = config
  for part in parents:
    node = node[part]
  with node.unlocked() if node.is_locked else _null():
    node[last] = value


class _null:
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Resolves every path field of `config` in place (see CONFIG_PATHS and `spm:`/`hf:` vocabularies); returns it."""
  for key in CONFIG_PATHS:
    value = _get(config, key)
    if isinstance(value, str) and value:
      _set(config, key, resolve(value))
  vocab = _get(config, "data.vocab")
  for prefix in ("spm:", "hf:"):
    if isinstance(vocab, str) and vocab.startswith(prefix) and len(vocab) > len(prefix):
      _set(config, "data.vocab", prefix + resolve(vocab[len(prefix):]))
  return config
