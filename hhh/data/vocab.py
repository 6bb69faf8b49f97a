"""Vocabularies selected by a config string, and the special token ids in ONE place.

    "byte"        -> seqio.ByteVocabulary (zero set-up; 256 bytes + pad/eos/unk + the extra ids below)
    "spm:PATH"    -> seqio.SentencePieceVocabulary(PATH) (train one with tools/train_vocab.py)
    "hf:PATH"     -> HFTokenizerVocabulary(PATH): a Hugging Face `tokenizer.json` (the `tokenizers` library, no
                     network); PATH is the file or a directory holding it (a Hugging Face model directory)

Special tokens (always ask these functions, never assume the numbers; every caller passes the vocabulary in use):
    pad_id(vocab)  byte/spm: 0 (seqio convention). hf: the tokenizer's pad token if it names one, else its EOS id.
                   Padding is always masked (the features' `valid`, loss weights, segment ids, eoc_index), so the pad
                   id only has to exist; several feature families pad with 0 whatever the vocabulary
                   (hhh/data/features.py says which).
    eos_id(vocab)  byte/spm: 1 (seqio convention). hf: the tokenizer's EOS token (GPT-2/Pythia "<|endoftext|>",
                   Llama "</s>", Llama-3 "<|end_of_text|>" / "<|eot_id|>" as its tokenizer_config.json says).
    eoc_id(vocab)  the END-OF-CONTEXT token appended to every sample of a preference model; its score is read there.
                   It is ONE extra id at the top of the vocabulary: vocab_size(vocab) - 1. byte/spm: seqio's extra
                   id 0. hf: the first id after the tokenizer's own ids (= the tokenizer's size), so
                   vocab_size(hf vocab) = tokenizer size + 1 and the model's embedding must cover it.
    lm_start_id(vocab)  the decoder input in front of every packed LM document: 0 for byte/spm (seqio's
                   convention, the pad id, never text); hf: the tokenizer's BOS token, else its EOS.

Vocabularies without TensorFlow: this module imports seqio (and with it TensorFlow) only when a vocabulary is asked
for. On a machine without seqio, `get_vocabulary("byte")` is `PyByteVocabulary` and `get_vocabulary("hf:PATH")` is
`PyHFTokenizerVocabulary`: pure-Python vocabularies with the same ids, sizes and decoding (no TF ops), so the
objectives' prompt tokenisation (context distillation, evaluation prompts) runs in a TensorFlow-free core
(tests/test_core_imports.py). "spm:PATH" always needs seqio. The tf.data pipeline always uses seqio's classes
(`HFTokenizerVocabulary` is a seqio.Vocabulary; its TF ops run the Python tokenizer through tf.numpy_function, so
a tf.data iterator using them must be released before the interpreter exits: pipeline.BatchIterator does that).

Hugging Face tokenizers ("hf:PATH"):
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

import functools
import hashlib
import json
import logging
import os
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np

from hhh.core.errors import ConfigError

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
# One extra id is reserved at the top of the vocabulary: the end-of-context token.
NUM_EXTRA_IDS = 1

HF_PREFIX = "hf:"
HF_TOKENIZER_FILE = "tokenizer.json"
HF_EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>", "<|im_end|>")
HF_BOS_CANDIDATES = ("<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>")
# Round-trip probe checked when a tokenizer is loaded (a warning if it fails).
_HF_PROBE = "\n\nHuman: Héllo,  wörld! 12 * 3 = 36?\n\tok\n\nAssistant: Sure - 猫 🐈."

log = logging.getLogger(__name__)


class PyByteVocabulary:
  """seqio.ByteVocabulary(extra_ids) without TensorFlow: id = UTF-8 byte + 3 (0 pad, 1 EOS, 2 UNK), then the
  extra ids. Same ids, sizes and decoding as seqio's (tested against it in tests/test_data_core.py)."""

  _NUM_SPECIAL = 3
  _BYTES = 256

  def __init__(self, extra_ids: int = 0):
    self._extra_ids = int(extra_ids)

  pad_id = PAD_ID
  eos_id = EOS_ID
  unk_id = UNK_ID
  bos_id = None

  @property
  def extra_ids(self) -> int:
    return self._extra_ids

  @property
  def vocab_size(self) -> int:
    return self._NUM_SPECIAL + self._BYTES + self._extra_ids

  def encode(self, s: Union[str, bytes]) -> List[int]:
    s = s.decode() if isinstance(s, bytes) else s
    return [b + self._NUM_SPECIAL for b in s.encode("utf-8")]

  def decode(self, ids: Iterable[int]) -> str:
    """Up through the first EOS; ids beyond the bytes (extra ids) become UNK; special ids are dropped."""
    base = self._NUM_SPECIAL + self._BYTES
    clean = [int(i) for i in ids]
    clean = [UNK_ID if i >= base else i for i in clean]
    if EOS_ID in clean:
      clean = clean[:clean.index(EOS_ID) + 1]
    return bytes(i - self._NUM_SPECIAL for i in clean if self._NUM_SPECIAL <= i < base).decode("utf-8", "ignore")

  def __eq__(self, other):
    return type(other) is type(self) and other.extra_ids == self.extra_ids

  def __hash__(self):
    return hash((type(self), self._extra_ids))


# ------------------------------------------------------------------------------------- Hugging Face tokenizers


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
    if not os.path.isfile(p):
      return None
    try:
      with open(p, encoding="utf-8") as f:
        d = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"cannot read {p}: {e}") from e
    if not isinstance(d, dict):
      raise ValueError(f"{p}: expected a JSON object")
    return d

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
    if self.decode(self.encode(_HF_PROBE)) != _HF_PROBE:
      log.warning("vocabulary 'hf:%s' does not round-trip text exactly (decode(encode(s)) != s for %r); its "
                  "normaliser changes text", path, _HF_PROBE)

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


@functools.lru_cache(maxsize=None)
def _hf_seqio_class():
  """HFTokenizerVocabulary, a seqio.Vocabulary (defined on first use: seqio imports TensorFlow)."""
  seqio = _seqio("the 'hf:' vocabulary's seqio class")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  class HFTokenizerVocabulary(seqio.Vocabulary):
    """A Hugging Face tokenizer.json as a seqio.Vocabulary (rules: hhh/data/vocab.py's docstring).

    The Python side is a `PyHFTokenizerVocabulary` (`.py`); the TF side (`encode_tf`, `decode_tf`,
    `encode_strings_tf`) runs it through tf.numpy_function, so it works inside tf.data maps (not in graphs that
    must be serialised). Ids: the tokenizer's, then the end-of-context token (extra id 0) = the tokenizer's size."""

    def __init__(self, path_or_py):
      self.py = (path_or_py if isinstance(path_or_py, PyHFTokenizerVocabulary)
                 else PyHFTokenizerVocabulary(path_or_py))
      super().__init__(extra_ids=NUM_EXTRA_IDS)

    @property
    def path(self) -> str:
      return self.py.path

    @property
    def tokenizer(self):
      return self.py.tokenizer

    @property
    def dummy_prefix(self) -> bool:
      return self.py.dummy_prefix

    @property
    def bos_id(self) -> Optional[int]:
      return self.py.bos_id

    @property
    def eos_id(self) -> Optional[int]:
      return self.py.eos_id

    @property
    def pad_id(self) -> int:
      return self.py.pad_id

    @property
    def unk_id(self) -> Optional[int]:
      return self.py.unk_id

    @property
    def _base_vocab_size(self) -> int:
      return self.py.size

    def _encode(self, s) -> Sequence[int]:
      return self.py.encode(s)

    def _decode(self, ids) -> str:
      return self.py.decode(ids)

    def decode(self, ids: Iterable[int]) -> str:
      # Not seqio's: that maps ids >= the tokenizer's size (the eoc token) to UNK, which this tokenizer renders.
      return self.py.decode(ids)

    def _encode_tf(self, s):
      s = tf.convert_to_tensor(s, tf.string)
      if s.shape.rank != 0:
        return self.encode_strings_tf(s)
      ids = tf.numpy_function(lambda b: np.asarray(self.py.encode(np.asarray(b).item()), np.int32), [s], tf.int32,
                              stateful=False)
      ids.set_shape([None])
      return ids

    def encode_strings_tf(self, strings):
      """A vector of strings [N] -> ragged [N, None] int32 ids (one batched call of the tokenizer)."""
      strings = tf.reshape(tf.convert_to_tensor(strings, tf.string), [-1])

      def enc(arr):
        rows = self.py.encode_batch(np.asarray(arr, dtype=object).reshape(-1).tolist())
        flat = np.asarray([i for r in rows for i in r], np.int32)
        return flat, np.asarray([len(r) for r in rows], np.int64)

      flat, lengths = tf.numpy_function(enc, [strings], (tf.int32, tf.int64), stateful=False)
      flat.set_shape([None])
      lengths.set_shape(strings.shape)
      return tf.RaggedTensor.from_row_lengths(flat, lengths)

    def _decode_tf(self, ids):
      ids = tf.convert_to_tensor(ids)

      def dec(arr):
        arr = np.asarray(arr)
        rows = arr.reshape((-1, arr.shape[-1]))
        out = np.asarray([self.py.decode(r.tolist()).encode("utf-8") for r in rows], dtype=object)
        return out.reshape(arr.shape[:-1])

      out = tf.numpy_function(dec, [ids], tf.string, stateful=False)
      out.set_shape(ids.shape[:-1])
      return out

    def decode_tf(self, ids):
      # Through the Python decode (first EOS, pad, eoc) rather than seqio's TF clean-up (eoc -> UNK).
      return self._decode_tf(ids)

    def __eq__(self, other):
      return isinstance(other, HFTokenizerVocabulary) and other.py == self.py

    def __hash__(self):
      return hash(self.py)

    def __str__(self):
      return (f"HFTokenizerVocabulary({self.py.path!r}, size={self.py.size}, eos_id={self.eos_id}, "
              f"pad_id={self.pad_id}, eoc_id={self.py.eoc_id})")

    __repr__ = __str__

  HFTokenizerVocabulary.__module__ = __name__
  HFTokenizerVocabulary.__qualname__ = "HFTokenizerVocabulary"
  return HFTokenizerVocabulary


def __getattr__(name):  # `hhh.data.vocab.HFTokenizerVocabulary` (imports seqio on first use)
  if name == "HFTokenizerVocabulary":
    return _hf_seqio_class()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _seqio(what: str):
  try:
    import seqio  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"{what} needs seqio (pip install seqio); without it only the 'byte' and 'hf:' vocabularies "
                      f"are available (as hhh.data.vocab.PyByteVocabulary / PyHFTokenizerVocabulary)") from e
  return seqio


def _have_seqio() -> bool:
  try:
    import seqio  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


@functools.lru_cache(maxsize=None)
def _py_hf(path: str) -> PyHFTokenizerVocabulary:
  return PyHFTokenizerVocabulary(path)


@functools.lru_cache(maxsize=None)
def get_vocabulary(name: str = "byte"):
  """Returns the vocabulary named by a config string ("byte", "spm:PATH" or "hf:PATH").

  A seqio.Vocabulary when seqio is installed; without seqio, "byte" gives the equivalent PyByteVocabulary and
  "hf:PATH" the equivalent PyHFTokenizerVocabulary."""
  if name == "byte":
    if not _have_seqio():
      return PyByteVocabulary(extra_ids=NUM_EXTRA_IDS)
    import seqio  # pylint: disable=g-import-not-at-top
    return seqio.ByteVocabulary(extra_ids=NUM_EXTRA_IDS)
  if name.startswith("spm:"):
    path = name[len("spm:"):]
    if not path:
      raise ValueError(f"vocabulary {name!r}: expected 'spm:PATH'")
    seqio = _seqio(f"vocabulary {name!r}")
    if "://" not in path and not os.path.isfile(path):
      raise ConfigError(f"vocabulary {name!r}: SentencePiece model {path} does not exist (train one with "
                        f"tools/train_vocab.py)")
    vocab = seqio.SentencePieceVocabulary(path, extra_ids=NUM_EXTRA_IDS)
    if vocab.tokenizer.pad_id() != PAD_ID or vocab.tokenizer.eos_id() != EOS_ID:
      raise ValueError(
          f"SentencePiece model {path} must use pad_id={PAD_ID}, eos_id={EOS_ID} (train it with "
          f"tools/train_vocab.py); it has pad_id={vocab.tokenizer.pad_id()} eos_id={vocab.tokenizer.eos_id()}")
    return vocab
  if name.startswith(HF_PREFIX):
    py = _py_hf(name[len(HF_PREFIX):])
    return _hf_seqio_class()(py) if _have_seqio() else py
  raise ValueError(f"unknown vocabulary {name!r}: use 'byte', 'spm:PATH' or 'hf:PATH'")


def _as_vocab(vocab):
  return get_vocabulary(vocab) if isinstance(vocab, str) else vocab


def is_hf(vocab) -> bool:
  """Whether `vocab` (a config string or a vocabulary) is a Hugging Face tokenizer ("hf:PATH")."""
  if isinstance(vocab, str):
    return vocab.startswith(HF_PREFIX)
  return isinstance(vocab, PyHFTokenizerVocabulary) or isinstance(getattr(vocab, "py", None), PyHFTokenizerVocabulary)


def vocab_size(vocab) -> int:
  """Number of ids the model's embedding must cover (model.vocab_size >= this), eoc token included."""
  return int(_as_vocab(vocab).vocab_size)


def pad_id(vocab=None) -> int:
  """The vocabulary's padding id (0 for byte/spm; see the module docstring for hf). None: the default "byte"."""
  return PAD_ID if vocab is None else int(_as_vocab(vocab).pad_id)


def eos_id(vocab=None) -> int:
  """The vocabulary's end-of-sequence id (1 for byte/spm; the tokenizer's EOS for hf). None: the default "byte"."""
  return EOS_ID if vocab is None else int(_as_vocab(vocab).eos_id)


def eoc_id(vocab) -> int:
  """The end-of-context token id (the preference model's score is read at this token)."""
  return vocab_size(vocab) - 1


def zero_is_text(vocab) -> bool:
  """Whether id 0 can be a text token. False for byte/spm (0 is their pad id, which seqio's packing and loss weights
  treat as padding); True for hf vocabularies (e.g. GPT-2's "!"), whose LM features are packed with shifted ids
  (hhh/data/features.py)."""
  return is_hf(vocab)


def lm_start_id(vocab) -> int:
  """The decoder input in front of the first token of every packed LM document: 0 for byte/spm (seqio's
  make_autoregressive_inputs convention; their pad id); for hf the tokenizer's BOS token, else its EOS (GPT-2/Pythia
  separate pretraining documents with "<|endoftext|>")."""
  v = _as_vocab(vocab)
  if not is_hf(v):
    return 0
  return int(v.bos_id) if v.bos_id is not None else int(v.eos_id)
