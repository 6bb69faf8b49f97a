"""Hugging Face tokenizers ("hf:PATH") without TensorFlow: finding the tokenizer.json and the files that name its
special tokens, and PyHFTokenizerVocabulary, the tokenizer as a vocabulary (the `tokenizers` library, no network).

* Special tokens are read from the directory's (for a file: the file's directory's) tokenizer_config.json and
  special_tokens_map.json, as transformers reads them: tokenizer_config.json's eos/pad/bos/unk_token, and
  special_tokens_map.json's overriding them only when tokenizer_config.json has no `added_tokens_decoder`
  (transformers' legacy rule). Without either file the EOS is the first of "<|endoftext|>", "<|end_of_text|>",
  "</s>", "<eos>", "<|eot_id|>", "<|im_end|>" the tokenizer has (none: an error asking for a
  tokenizer_config.json), the pad token the one in tokenizer.json's `padding` section (else the EOS), the BOS
  the first of "<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>" it has, the UNK its model's unk token.
* Tokenizer size = the number of ids including added tokens (the largest id + 1 if the ids have holes).
* encode(text) = tokenizer.encode(text, add_special_tokens=False).ids: no BOS, no EOS, no post-processor
  template; truncation and padding configured in tokenizer.json are switched off. A special token's text inside
  the input (e.g. a literal "<|endoftext|>") is encoded as that token, as `tokenizers` does.
* decode(ids): seqio's contract - up to the first EOS (the EOS itself, the pad id and ids >= the tokenizer's size,
  i.e. the eoc token, are not rendered); every other id, other special tokens included, is decoded verbatim
  (skip_special_tokens=False). decode(encode(s)) == s exactly for byte-level BPE (GPT-2, Pythia, Llama-3) and
  for SentencePiece conversions with byte fallback (Llama-2, Mistral) except where noted below; a tokenizer that
  does not round-trip a dialogue probe (e.g. a lower-casing normaliser) is loaded with a warning.
* Context and response are tokenised SEPARATELY by the pipeline, the evaluations and the sampler (prompt ids,
  then generated ids), and what the model sees is that concatenation:
    - byte-level BPE with GPT-2-style pre-tokenisation (GPT-2, Pythia, Llama-3): a context ending in
      "Assistant:" and a response starting with a space (dialogue.query / dialogue.response) meet at a
      pre-tokeniser boundary (":" is split from " word" before any merge), so encode(context) is a prefix of
      encode(context + response): the concatenation IS the joint encoding. When a piece ends in a letter, digit
      or space and the next one continues the word (e.g. a raw text cut mid-word), BPE would merge across the
      boundary and the joint encoding differs; decode(encode(a) + encode(b)) == a + b still holds exactly.
    - SentencePiece conversions (Llama-2, Mistral; `vocab.dummy_prefix` is True) add a dummy prefix "▁" to an
      encoded piece, which their decoder strips from the FIRST token only:
        Prepend("▁") normaliser (Llama-2's hub tokenizer.json): to every piece. Each piece round-trips alone,
        but a separately encoded response carries one extra "▁": decode(encode(c) + encode(r)) == c + " " + r.
        Metaspace(prepend_scheme="first") pre-tokeniser (transformers' current conversion): only to a piece
        that does not start with a space. encode(c) + encode(r) == encode(c + r) for a space-led response, but
        decoded ALONE such a piece loses its leading space (decode(encode(" x")) == "x"), and a piece that
        does not start with a space gains one when decoded after another (after a shared prompt, say).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np

from hhh.core.jsonfile import read_json_object
from hhh.data.vocab.ids import NUM_EXTRA_IDS

HF_PREFIX = "hf:"
HF_TOKENIZER_FILE = "tokenizer.json"
HF_EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>", "<|im_end|>")
HF_BOS_CANDIDATES = ("<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>")
# Round-trip probe checked when a tokenizer is loaded (a warning if it fails).
HF_PROBE = "\n\nHuman: Héllo,  wörld! 12 * 3 = 36?\n\tok\n\nAssistant: Sure - 猫 🐈."

log = logging.getLogger(__name__)


def hf_tokenizer_files(path: str) -> tuple:
  """"hf:" PATH -> (the tokenizer.json file, the directory whose tokenizer_config.json / special_tokens_map.json
  name the special tokens). Raises FileNotFoundError naming PATH when there is no tokenizer.json."""
  if not path:
    raise ValueError(f"vocabulary {HF_PREFIX!r}: expected 'hf:PATH' (a tokenizer.json or a directory holding one)")
  full = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(full):
    file = os.path.join(full, HF_TOKENIZER_FILE)
    if not os.path.isfile(file):
      raise FileNotFoundError(f"vocabulary 'hf:{path}': the directory {full} has no {HF_TOKENIZER_FILE} (a Hugging "
                              f"Face model directory with a fast tokenizer has one)")
    return file, full
  if os.path.isfile(full):
    return full, os.path.dirname(full)
  raise FileNotFoundError(f"vocabulary 'hf:{path}': no such file or directory: {full} (expected a "
                          f"{HF_TOKENIZER_FILE} or a directory holding one)")


def _token_text(value) -> Optional[str]:
  """A special token as tokenizer_config.json / special_tokens_map.json write it: a string or an AddedToken dict."""
  if isinstance(value, dict):
    value = value.get("content")
  return value if isinstance(value, str) and value else None


def _hf_special_token_names(config_dir: str) -> dict:
  """{"eos_token": text, ...} from tokenizer_config.json and special_tokens_map.json (transformers' rule)."""
  keys = ("eos_token", "pad_token", "bos_token", "unk_token")

  def read(name):
    p = os.path.join(config_dir, name)
    return read_json_object(p) if os.path.isfile(p) else None

  cfg = read("tokenizer_config.json") or {}
  out = {k: _token_text(cfg.get(k)) for k in keys}
  stm = read("special_tokens_map.json")
  if stm and "added_tokens_decoder" not in cfg:  # transformers reads special_tokens_map.json only then
    for k in keys:
      if _token_text(stm.get(k)) is not None:
        out[k] = _token_text(stm.get(k))
  return {k: v for k, v in out.items() if v is not None}


class PyHFTokenizerVocabulary:
  """A Hugging Face tokenizer.json as a vocabulary, without TensorFlow (see the module docstring for the rules).

  The same interface as the seqio vocabularies where this code base uses it: encode, decode, vocab_size, pad_id,
  eos_id, unk_id, bos_id, extra_ids (1: the end-of-context token at id `size`). `tokenizer` is the
  `tokenizers.Tokenizer` (truncation and padding off)."""

  def __init__(self, path: str):
    try:
      import tokenizers  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f"vocabulary 'hf:{path}' needs the `tokenizers` library (pip install tokenizers)") from e
    self.path = path
    self.tokenizer_file, self.config_dir = hf_tokenizer_files(path)
    with open(self.tokenizer_file, "rb") as f:
      raw = f.read()
    try:
      tok = tokenizers.Tokenizer.from_str(raw.decode("utf-8"))
      spec = json.loads(raw)
    except Exception as e:  # pylint: disable=broad-except  (tokenizers raises its own Exception type)
      raise ValueError(f"vocabulary 'hf:{path}': {self.tokenizer_file} is not a Hugging Face tokenizer.json: "
                       f"{e}") from e
    padding = tok.padding
    tok.no_truncation()
    tok.no_padding()
    self.tokenizer = tok
    vocab = tok.get_vocab(with_added_tokens=True)
    # The tokenizer's size: its ids 0..size-1 (the largest id + 1 should the ids have holes).
    self.size = max(tok.get_vocab_size(with_added_tokens=True), max(vocab.values(), default=-1) + 1)
    names = _hf_special_token_names(self.config_dir)

    def lookup(kind: str, text: str) -> int:
      i = tok.token_to_id(text)
      if i is None:
        raise ValueError(f"vocabulary 'hf:{path}': the {kind} {text!r} named in {self.config_dir}'s tokenizer "
                         f"config is not a token of {self.tokenizer_file}")
      return int(i)

    def first_of(candidates) -> Optional[int]:
      for c in candidates:
        if c in vocab:
          return int(vocab[c])
      return None

    if "eos_token" in names:
      self.eos_id = lookup("eos_token", names["eos_token"])
    else:
      self.eos_id = first_of(HF_EOS_CANDIDATES)
      if self.eos_id is None:
        raise ValueError(f"vocabulary 'hf:{path}': cannot tell the end-of-sequence token of {self.tokenizer_file} "
                         f"(none of {list(HF_EOS_CANDIDATES)}); put a tokenizer_config.json with \"eos_token\" "
                         f"next to it")
    if "pad_token" in names:
      self.pad_id = lookup("pad_token", names["pad_token"])
    elif padding and padding.get("pad_token") in vocab:
      self.pad_id = int(vocab[padding["pad_token"]])
    else:
      self.pad_id = self.eos_id  # padding is always masked: the id only has to exist
    self.bos_id = lookup("bos_token", names["bos_token"]) if "bos_token" in names else first_of(HF_BOS_CANDIDATES)
    if "unk_token" in names:
      self.unk_id = lookup("unk_token", names["unk_token"])
    else:
      model = spec.get("model") or {}
      unk = model.get("unk_token") if isinstance(model.get("unk_token"), str) else None
      if unk is not None and unk in vocab:
        self.unk_id = int(vocab[unk])
      elif isinstance(model.get("unk_id"), int):  # Unigram
        self.unk_id = int(model["unk_id"])
      else:
        self.unk_id = None
    self.extra_ids = NUM_EXTRA_IDS
    self.fingerprint = hashlib.sha256(
        raw + json.dumps([self.eos_id, self.pad_id, self.bos_id, self.unk_id, self.size]).encode()).hexdigest()
    # SentencePiece conversions prepend "▁" to every encoded piece (see the module docstring).
    self.dummy_prefix = self.decode(self.encode("a") + self.encode("a")) != "aa"
    if self.decode(self.encode(HF_PROBE)) != HF_PROBE:
      log.warning("vocabulary 'hf:%s' does not round-trip text exactly (decode(encode(s)) != s for %r); its "
                  "normaliser changes text", path, HF_PROBE)

  @property
  def vocab_size(self) -> int:
    """Tokenizer size + 1 (the end-of-context token)."""
    return self.size + self.extra_ids

  @property
  def eoc_id(self) -> int:
    return self.size

  def encode(self, s: Union[str, bytes]) -> List[int]:
    s = s.decode("utf-8") if isinstance(s, bytes) else s
    return list(self.tokenizer.encode(s, add_special_tokens=False).ids)

  def encode_batch(self, strings: Sequence[Union[str, bytes]]) -> List[List[int]]:
    texts = [s.decode("utf-8") if isinstance(s, bytes) else s for s in strings]
    return [list(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

  def decode(self, ids: Iterable[int]) -> str:
    """Up to the first EOS; the EOS, the pad id and ids outside the tokenizer (the eoc token) are not rendered."""
    if hasattr(ids, "numpy"):  # an eager tf.Tensor
      ids = ids.numpy()
    if isinstance(ids, np.ndarray):
      ids = ids.reshape(-1).tolist()
    clean = [int(i) for i in ids]
    if self.eos_id in clean:
      clean = clean[:clean.index(self.eos_id)]
    clean = [i for i in clean if 0 <= i < self.size and i != self.pad_id]
    return self.tokenizer.decode(clean, skip_special_tokens=False)

  def __eq__(self, other):
    return type(other) is type(self) and other.fingerprint == self.fingerprint

  def __hash__(self):
    return hash((type(self), self.fingerprint))

  def __repr__(self):
    return (f"PyHFTokenizerVocabulary({self.path!r}, size={self.size}, eos_id={self.eos_id}, pad_id={self.pad_id}, "
            f"eoc_id={self.eoc_id})")
