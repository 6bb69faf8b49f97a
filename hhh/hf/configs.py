"""What the architectures' HF config <-> hhh `model` section conversions share: the activation names both ways and
the rotary base, which transformers >= 5 moved into `rope_parameters`."""
from __future__ import annotations

from hhh.core.errors import ConfigError

HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new"}  # hhh `mlp` -> HF hidden_act / activation_function


def activation(name: str, arch: str) -> str:
  """The hhh `mlp` of a HF activation name."""
  table = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh"}
  if name not in table:
    raise ConfigError(f"{arch}: activation {name!r} is not supported (gelu, gelu_new, gelu_pytorch_tanh)")
  return table[name]


def rope_theta(hf: dict, default):
  """The rotary base: `rope_parameters.rope_theta` (transformers >= 5) over `default`."""
  if isinstance(hf.get("rope_parameters"), dict):  # transformers >= 5 stores rotary settings here
    return hf["rope_parameters"].get("rope_theta", default)
  return default
