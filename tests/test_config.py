"""hhh.config: one loader for config strings, one override helper, one SIZE[,VARIANT] parser, one source of the
model's defaults."""

import dataclasses

import pytest

from hhh import config as hc
from hhh.core.errors import ConfigError
from hhh.models.transformer import TransformerConfig


def test_load_by_config_string_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert hc.load("configs/preference.py:lab_s").model.n_layers == hc.SIZES["lab_s"]["n_layers"]
  assert hc.load("pmp:tiny,ranked,lab").data.task == "lab_compare_pair"
  assert hc.load("configs/pretrain.py").size == "tiny"
  with pytest.raises(ConfigError, match="nope.py"):
    hc.load("configs/nope.py:tiny")


def test_override_reads_command_line_values_and_names_bad_keys():
  c = hc.load("configs/pretrain.py:tiny")
  hc.override(c, {"train.steps": "10", "optim.lr": 1, "data.task": "123", "train.async_checkpoints": "false"})
  assert (c.train.steps, c.optim.lr, c.data.task, c.train.async_checkpoints) == (10, 1.0, "123", False)
  with pytest.raises(ConfigError, match="'train.stepz'.*steps"):
    hc.override(c, {"train.stepz": 1})
  with pytest.raises(ConfigError, match="'trian' is not a section"):
    hc.override(c, {"trian.steps": 1})
  with pytest.raises(ConfigError, match="train.steps"):
    hc.override(c, {"train.steps": 0.5})  # no silent truncation of a float into an int field


def test_size_and_variants():
  assert hc.size_and_variants("13m, lab", "u", ([], ["lab"])) == ("13m", ["lab"])
  assert hc.size_and_variants(None, "u", ([],)) == ("tiny", [])
  with pytest.raises(ValueError, match=r"configs/finetune.py:SIZE\[,lab\], got 'tiny,labs'"):
    hc.load("configs/finetune.py:tiny,labs")
  with pytest.raises(ValueError, match="online"):
    hc.load("configs/distill.py:tiny,offlin")


def test_model_defaults_have_one_source():
  m = hc.model_config("tiny")
  for f in dataclasses.fields(TransformerConfig):
    if f.default is not dataclasses.MISSING and f.name not in hc.SIZES["tiny"]:
      assert m[f.name] == f.default, f.name
