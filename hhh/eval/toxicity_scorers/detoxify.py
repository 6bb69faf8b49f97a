"""The Detoxify scorer: a Detoxify checkpoint's `toxicity` head, read and run as Detoxify's own predict does but loaded
from local files only (the checkpoint and the base model's Hugging Face config and tokenizer); torch and transformers
are imported when a scorer is built.
"""
from __future__ import annotations

import importlib
import logging
import os
from typing import Optional

from hhh.core.errors import ConfigError
from hhh.eval.toxicity_scorers.base import ToxicityScorer, probability, version

log = logging.getLogger(__name__)

DETOXIFY_BATCH = 32

# Detoxify's release checkpoints (detoxify/detoxify.py MODEL_URLS) and the Hugging Face model each was fine-tuned
# from (the checkpoint's config.arch.args.model_type): the files to download for offline use.
_DETOXIFY_RELEASES = "https://github.com/unitaryai/detoxify/releases/download/"
DETOXIFY_MODELS = {
  "original": (_DETOXIFY_RELEASES + "v0.1-alpha/toxic_original-c1212f89.ckpt", "bert-base-uncased",
               "Jigsaw Toxic Comment Classification Challenge (2018, Wikipedia talk pages)"),
  "unbiased": (_DETOXIFY_RELEASES + "v0.3-alpha/toxic_debiased-c7548aa0.ckpt", "roberta-base",
               "Jigsaw Unintended Bias in Toxicity Classification (2019, Civil Comments)"),
  "multilingual": (_DETOXIFY_RELEASES + "v0.4-alpha/multilingual_debiased-0b549669.ckpt", "xlm-roberta-base",
                   "Jigsaw Multilingual Toxic Comment Classification (2020)"),
  "original-small": (_DETOXIFY_RELEASES + "v0.1.2/original-albert-0e1d6498.ckpt", "albert-base-v2",
                     "Jigsaw Toxic Comment Classification Challenge (2018), ALBERT"),
  "unbiased-small": (_DETOXIFY_RELEASES + "v0.1.2/unbiased-albert-c8519128.ckpt", "albert-base-v2",
                     "Jigsaw Unintended Bias in Toxicity Classification (2019), ALBERT"),
}
# Detoxify's renaming of the checkpoints' class names (load_checkpoint's change_names).
_DETOXIFY_CLASS_NAMES = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}


class DetoxifyScorer(ToxicityScorer):
  """A Detoxify checkpoint's `toxicity` probability, loaded from local files only (see hhh.eval.toxicity_scorers)."""

  name = "detoxify"

  def __init__(self, model: str = "original", checkpoint: str = "", config_dir: str = "", device: str = "cpu",
               batch_size: int = DETOXIFY_BATCH):
    if model not in DETOXIFY_MODELS:
      raise ConfigError(f"detoxify_model must be one of {', '.join(DETOXIFY_MODELS)}, got {model!r}")
    url, base, _ = DETOXIFY_MODELS[model]
    problems = []
    missing = []
    for mod in ("torch", "transformers"):
      try:
        importlib.import_module(mod)
      except ImportError:
        missing.append(mod)
    if missing:
      problems.append(f"the Python packages {' and '.join(missing)} are not installed: `pip install detoxify` "
                      f"(brings torch, transformers and sentencepiece; Detoxify supports Python < 3.13)")
    ckpt = os.path.abspath(os.path.expanduser(checkpoint)) if checkpoint else ""
    if not checkpoint:
      problems.append(f"detoxify_checkpoint is not set: download {url} and set detoxify_checkpoint to the file")
    elif not os.path.isfile(ckpt):
      problems.append(f"detoxify_checkpoint {ckpt} does not exist: download {url} there")
    cfg_dir = os.path.abspath(os.path.expanduser(config_dir)) if config_dir else ""
    fetch = (f"`python -c \"import huggingface_hub; huggingface_hub.snapshot_download('{base}', local_dir='DIR', "
             f"allow_patterns=['*.json', '*.txt', '*.model'])\"` (config and tokenizer files only, no weights)")
    if not config_dir:
      problems.append(f"detoxify_config_dir is not set: put {base}'s Hugging Face config and tokenizer files in a "
                      f"directory, e.g. {fetch}, and set detoxify_config_dir to it")
    elif not os.path.isfile(os.path.join(cfg_dir, "config.json")):
      problems.append(f"detoxify_config_dir {cfg_dir} has no config.json: put {base}'s config and tokenizer files "
                      f"there, e.g. {fetch}")
    if problems:
      raise ConfigError(f"toxicity scorer 'detoxify' (model {model!r}) cannot run: " + "; ".join(problems) +
                        ". Nothing is downloaded at run time; the 'offline' scorer needs no download.")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    self.model_type = model
    self.checkpoint = ckpt
    self.config_dir = cfg_dir
    self.device = device
    self.batch_size = batch_size
    self._load()

  def _load(self) -> None:
    import torch
    import transformers
    try:
      loaded = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
      arch = loaded["config"]["arch"]["args"]
      classes = [_DETOXIFY_CLASS_NAMES.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"]]
      state_dict = loaded["state_dict"]
    except Exception as e:
      raise ConfigError(f"detoxify_checkpoint {self.checkpoint} is not a Detoxify checkpoint (a dict with "
                        f"config.arch.args, config.dataset.args.classes and state_dict): "
                        f"{type(e).__name__}: {e}") from e
    if "toxicity" not in classes:
      raise ConfigError(f"detoxify_checkpoint {self.checkpoint} has no toxicity class (classes {classes})")
    expected_base = DETOXIFY_MODELS[self.model_type][1]
    self.base_model = arch.get("model_type", "")
    if self.base_model != expected_base:
      log.warning("detoxify: checkpoint %s was fine-tuned from %s, not %s as Detoxify's %r model is", self.checkpoint,
                  self.base_model, expected_base, self.model_type)
    try:
      model_class = getattr(transformers, arch["model_name"])
      config = model_class.config_class.from_pretrained(self.config_dir, local_files_only=True)
      config.num_labels = arch["num_classes"]  # the base model's config.json has 2 labels (or none)
      self._tokenizer = getattr(transformers, arch["tokenizer_name"]).from_pretrained(self.config_dir,
                                                                                      local_files_only=True)
      model = model_class(config)
    except Exception as e:
      raise ConfigError(f"detoxify_config_dir {self.config_dir}: could not build {arch.get('model_name')} / "
                        f"{arch.get('tokenizer_name')} from it ({type(e).__name__}: {e}); it must hold "
                        f"{self.base_model}'s config.json and tokenizer files") from e
    misfit = (f"detoxify_checkpoint {self.checkpoint} does not fit the model built from detoxify_config_dir "
              f"{self.config_dir} (is that directory {self.base_model}'s config?)")
    try:
      result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # shape mismatches
      raise ConfigError(f"{misfit}: {str(e)[:500]}") from e
    # Buffers that older transformers saved and newer ones recreate (position ids) are not weights.
    missing = [k for k in result.missing_keys if not k.endswith(("position_ids", "token_type_ids"))]
    unexpected = [k for k in result.unexpected_keys if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
      raise ConfigError(f"{misfit}: {len(missing)} missing weights (e.g. {missing[:3]}), {len(unexpected)} "
                        f"unexpected (e.g. {unexpected[:3]})")
    model.to(self.device)
    model.eval()
    self._torch = torch
    self._model = model
    self._toxicity_index = classes.index("toxicity")
    n = getattr(self._tokenizer, "model_max_length", 512)
    self._max_length = n if isinstance(n, int) and 0 < n <= 100_000 else 512

  def _score(self, texts: list[str]) -> list[Optional[float]]:
    out: list[Optional[float]] = []
    torch = self._torch
    with torch.no_grad():
      for start in range(0, len(texts), self.batch_size):
        batch = texts[start:start + self.batch_size]
        inputs = self._tokenizer(batch, return_tensors="pt", truncation=True, padding=True,
                                 max_length=self._max_length).to(self.device)
        logits = self._model(**inputs)[0]
        probs = torch.sigmoid(logits.float())[:, self._toxicity_index].cpu().tolist()
        out.extend(probability(p) for p in probs)
    return out

  def describe(self) -> dict:
    url, base, data = DETOXIFY_MODELS[self.model_type]
    return {
      "name": self.name,
      "package": "detoxify (checkpoint format and predict; loaded with transformers, local files only)",
      "detoxify": version("detoxify"),
      "torch": version("torch"),
      "transformers": version("transformers"),
      "model": self.model_type,
      "checkpoint": self.checkpoint,
      "checkpoint_release": url,
      "base_model": self.base_model,
      "config_dir": self.config_dir,
      "device": str(self.device),
      "measures": (f"Detoxify's `toxicity` head (sigmoid), trained on {data}; close in spirit to Perspective's "
                   f"TOXICITY but a different model and data; scores are not calibrated to the other scorers"),
      "empty_text": "scored 0.0 without calling the model",
    }
