"""Trains the project's SentencePiece vocabulary.

    python tools/train_vocab.py --input='corpus/*.txt' --vocab_size=32000 --output=vocab/hhh

writes hhh.model / hhh.vocab. Use it as vocab="spm:vocab/hhh.model". Ids 0/1/2 are pad/eos/unk (seqio's
convention); the end-of-context token is added by hhh.data.vocab as seqio's extra id 0 (the last id).
The identity normalisation keeps "\\n\\n" and repeated spaces, so the "Human:/Assistant:" format round-trips.
"""
from __future__ import annotations

import argparse
import glob
import sys


def iter_text(pattern: str, max_chars: int):
  total = 0
  for path in sorted(glob.glob(pattern, recursive=True)):
    with open(path, "r", encoding="utf-8", errors="replace") as f:
      for line in f:
        yield line.rstrip("\n")
        total += len(line)
        if total >= max_chars:
          return


def train(input_glob: str, vocab_size: int, output: str, max_chars: int = 200_000_000,
          model_type: str = "bpe", character_coverage: float = 0.9995) -> str:
  import sentencepiece as spm
  if not glob.glob(input_glob, recursive=True):
    raise SystemExit(f"no files match {input_glob!r}")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter_text(input_glob, max_chars), model_prefix=output, vocab_size=vocab_size,
      model_type=model_type, character_coverage=character_coverage,
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
      byte_fallback=True, user_defined_symbols=["\n", "\n\n", "Human:", "Assistant:"],
      allow_whitespace_only_pieces=True, hard_vocab_limit=False, train_extremely_large_corpus=False)
  return output + ".model"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--input", required=True, help="glob of UTF-8 text files (recursive ** allowed)")
  ap.add_argument("--vocab_size", type=int, required=True)
  ap.add_argument("--output", required=True, help="model prefix: writes PREFIX.model and PREFIX.vocab")
  ap.add_argument("--model_type", default="bpe", choices=["bpe", "unigram"])
  ap.add_argument("--max_chars", type=int, default=200_000_000)
  a = ap.parse_args(argv)
  path = train(a.input, a.vocab_size, a.output, a.max_chars, a.model_type)
  print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
