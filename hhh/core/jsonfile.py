"""A JSON file that must hold one object (an HF config.json, tokenizer_config.json, a safetensors index), read with
errors that name the file: not valid JSON, or not an object, is a ConfigError (one line, no traceback)."""

from __future__ import annotations

import json

from hhh.core.errors import ConfigError


def first_line(e: BaseException) -> str:
  """The first line of an exception's message (its type's name when it has none)."""
  return (str(e).strip().splitlines() or [type(e).__name__])[0]


def read_json_object(path: str) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      out = json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise ConfigError(f"{path} is not valid JSON ({first_line(e)})") from None
  if not isinstance(out, dict):
    raise ConfigError(f"{path} is not a JSON object")
  return out
