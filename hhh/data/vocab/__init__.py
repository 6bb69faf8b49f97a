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

Vocabularies without TensorFlow: this package imports seqio (and with it TensorFlow) only when a vocabulary is asked
for. On a machine without seqio, `get_vocabulary("byte")` is `PyByteVocabulary` and `get_vocabulary("hf:PATH")` is
`PyHFTokenizerVocabulary`: pure-Python vocabularies with the same ids, sizes and decoding (no TF ops), so the
objectives' prompt tokenisation (context distillation, evaluation prompts) runs in a TensorFlow-free core
(tests/test_core_imports.py). "spm:PATH" always needs seqio. The tf.data pipeline always uses seqio's classes
(`HFTokenizerVocabulary` is a seqio.Vocabulary; its TF ops run the Python tokenizer through tf.numpy_function, so
a tf.data iterator using them must be released before the interpreter exits: pipeline.BatchIterator does that).

One concern per file: `ids` (the fixed special ids and the one extra id), `seqio_import` (seqio on demand),
`byte` (PyByteVocabulary), `hf` (Hugging Face tokenizer.json files and PyHFTokenizerVocabulary, with the rules they
follow), `hf_seqio` (HFTokenizerVocabulary, the seqio side), `names` (`get_vocabulary`: a config string to a
vocabulary), `special` (the special-id accessors above). Callers use this package's names
(`from hhh.data import vocab as vocab_lib; vocab_lib.eoc_id(vocab)`).
"""
from __future__ import annotations

from hhh.data.vocab.byte import PyByteVocabulary
from hhh.data.vocab.hf import HF_BOS_CANDIDATES, HF_EOS_CANDIDATES, HF_PREFIX, HF_TOKENIZER_FILE, \
    PyHFTokenizerVocabulary, hf_tokenizer_files
from hhh.data.vocab.hf_seqio import hf_seqio_class
from hhh.data.vocab.ids import EOS_ID, NUM_EXTRA_IDS, PAD_ID, UNK_ID
from hhh.data.vocab.names import get_vocabulary
from hhh.data.vocab.special import eoc_id, eos_id, is_hf, lm_start_id, pad_id, vocab_size, zero_is_text


def __getattr__(name):  # `hhh.data.vocab.HFTokenizerVocabulary` (imports seqio on first use)
  if name == "HFTokenizerVocabulary":
    return hf_seqio_class()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
