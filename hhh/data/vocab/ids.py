"""The special ids of the byte and SentencePiece vocabularies (seqio's convention: 0 pad, 1 EOS, 2 UNK) and the
number of extra ids every vocabulary reserves at its top (one: the end-of-context token). Ask `hhh.data.vocab`'s
functions for a vocabulary's ids; these numbers are what they answer for byte/spm.
"""
from __future__ import annotations

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
# One extra id is reserved at the top of the vocabulary: the end-of-context token.
NUM_EXTRA_IDS = 1
