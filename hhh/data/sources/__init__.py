"""Parsers of the paper's datasets in their ORIGINAL file formats, with canonical download locations.

One file per concern: `records` (ParseResult, the size caps, the comparison record), `reading` (download locations,
globs, plain and compressed files, JSON lines, the hash split), `pairs` (ranked -> pairs, the binary PMP
transformation), and one parser per dataset family: `bigbench` (hhh_alignment, truthful_qa), `stackexchange`,
`reddit`, `wikipedia`, `hh_rlhf`, `summarize`, `eli5`, `ethics`. Callers use this package's names
(`from hhh.data import sources; sources.parse_eli5(...)`).

Every parser returns a ParseResult: the good records (dicts with the raw task features of their kind), the bad
ones as (record id, reason), and the kept-but-shortened ones as (record id, what was cut).

Exclusion rule (the same everywhere): a record is excluded, counted and reported with its id when it cannot be
decoded (invalid UTF-8 or a lone surrogate, malformed JSON/XML/CSV, a JSON line that is not an object), lacks a
required field or has one of the wrong type (a number or list where text is expected, a string or bool where a
number is expected, ...), has an empty context-free response, has identical responses, has negative/missing votes
where votes are required, or (for ranked data) leaves fewer than two responses with different scores. A record
whose conversion raises anyway (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) is
excluded the same way: one bad record never stops a file. A compressed file that ends early or is corrupt keeps
the records read so far and adds one bad record naming the file and the first line not read.

Size cap (truncation, counted in `ParseResult.truncated`, not excluded): every text field is cut to
MAX_TEXT_CHARS characters (env HHH_MAX_TEXT_CHARS) before it reaches tokenisation: a context keeps its END (what
is nearest the response, as the pipeline's token truncation does), a response/choice its START; a ranked record
keeps its first MAX_RESPONSES responses (env HHH_MAX_RESPONSES; pairs grow quadratically). Nothing is dropped
silently: each task logs its exclusions and truncations, `tasks.bad_records(task, split)` /
`tasks.truncated_records(task, split)` / `tools/show_task.py --count` list them.

Splits: datasets without an official split are split by a stable hash (crc32) of the record's group id
(question/post/page; the part of the id before the first ':'): 95% train, 5% validation.
"""
from __future__ import annotations

from hhh.data.sources.bigbench import BIGBENCH_SUBSETS, bigbench_as_comparisons, parse_bigbench_choices
from hhh.data.sources.eli5 import parse_eli5
from hhh.data.sources.ethics import ETHICS_QUESTION, parse_ethics
from hhh.data.sources.hh_rlhf import parse_hh_rlhf
from hhh.data.sources.pairs import binary_pmp, comparisons_to_binary, ranked_pairs
from hhh.data.sources.reading import URLS, MissingData, decode, download, expand, hash_split, open_any
from hhh.data.sources.records import MAX_RESPONSES, MAX_TEXT_CHARS, RECORD_ERRORS, ParseResult, check_comparison, \
    comparison
from hhh.data.sources.reddit import parse_reddit
from hhh.data.sources.stackexchange import html_to_text, parse_stackexchange, stackexchange_score
from hhh.data.sources.summarize import parse_summarize, summarize_context
from hhh.data.sources.wikipedia import REVERT_COMMENT, parse_wikipedia
