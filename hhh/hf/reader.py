"""Reading a Hugging Face model directory: its config.json, its tensors memory-mapped from model.safetensors (or the
shards of model.safetensors.index.json), and the names of the tokenizer files that travel with a model both ways.
A cut, foreign or malformed file is one ConfigError naming it."""
from __future__ import annotations

import os

import numpy as np

from hhh.core.errors import ConfigError
from hhh.core.jsonfile import first_line, read_json_object

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "tokenizer.model", "generation_config.json")


class SafetensorsReader:
  """Memory-mapped tensors of a HF directory (model.safetensors or the shards of model.safetensors.index.json)."""

  def __init__(self, directory: str):
    from safetensors import safe_open  # pylint: disable=g-import-not-at-top  (the optional `hf` extra)
    index = os.path.join(directory, "model.safetensors.index.json")
    single = os.path.join(directory, "model.safetensors")
    if os.path.isfile(index):
      weight_map = read_json_object(index).get("weight_map")
      if not isinstance(weight_map, dict):
        raise ConfigError(f"{index}: no \"weight_map\" object (is it a safetensors index?)")
      files = sorted(set(weight_map.values()))
    elif os.path.isfile(single):
      files, weight_map = ["model.safetensors"], None
    else:
      raise ConfigError(f"no model.safetensors or model.safetensors.index.json in {directory} (PyTorch .bin "
                        f"checkpoints are not read: save with safe_serialization=True)")
    def open_file(f):
      path = os.path.join(directory, f)
      try:
        return safe_open(path, framework="numpy")
      except Exception as e:  # pylint: disable=broad-except  (safetensors' error for a cut or foreign file)
        raise ConfigError(f"{path} is not a readable safetensors file ({first_line(e)}): is it complete?") from None

    self._open = open_file
    if weight_map is None:
      with self._open(files[0]) as h:
        weight_map = {k: files[0] for k in h.keys()}
    self.weight_map = weight_map

  def names(self) -> set:
    return set(self.weight_map)

  def get(self, name: str) -> np.ndarray:
    if name not in self.weight_map:
      raise KeyError(name)
    # Opened per tensor: the file's mapping is released right after the copy, so the pages read do not stay in this
    # process's resident memory for the whole import.
    with self._open(self.weight_map[name]) as h:
      try:
        return h.get_tensor(name)
      except Exception as e:  # pylint: disable=broad-except  (data cut short after a whole header)
        raise ConfigError(f"{self.weight_map[name]}: tensor {name} cannot be read ({first_line(e)}): is the file "
                          f"complete?") from None


def read_hf_config(directory: str) -> dict:
  path = os.path.join(directory, "config.json")
  if not os.path.isfile(path):
    raise ConfigError(f"{directory} is not a Hugging Face model directory: no config.json")
  return read_json_object(path)
