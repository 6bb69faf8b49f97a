"""seqio task and mixture registry. Importing this module registers every task with the byte vocabulary.

Tasks are registered per vocabulary: under their plain name for "byte", and on demand (`ensure_task(name, vocab)`)
as "{name}#{vocab-hash}" for any other vocabulary string, so the vocabulary stays a config choice.

Each task has a KIND (the feature family it feeds): lm, imitation (lm family, loss on responses only),
comparison, binary, multiple_choice, distill. See docs/data.md for the list.

Where things are: hhh/data/task_registry.py (how a task is defined and registered), lab_tasks.py (the embedded
laboratory's tasks), file_tasks.py (tasks over the original files of real datasets and TFDS), and the mixtures below;
this module is the one to import.
"""
from __future__ import annotations

from hhh.data import file_tasks, humaneval, lab_tasks  # noqa: F401  (importing them registers their tasks)
from hhh.data.file_tasks import (TAX_TASKS, bad_records, bigbench_dir, clear_parse_cache, data_glob,
                                 has_file_parser, parsed, tfds_source, truncated_records)
from hhh.data.lab_tasks import LAB_SPLITS, lab_last_word
from hhh.data.task_registry import (DEFAULT_VOCAB, KIND_TO_FAMILY, define_mixture, define_task, ensure_task,
                                    family_of, forget_task, function_source, kind_of, mixture_tasks, names,
                                    output_features, preprocessors, records_to_dataset)

__all__ = ["TAX_TASKS", "bad_records", "bigbench_dir", "clear_parse_cache", "data_glob", "has_file_parser", "parsed",
           "tfds_source", "truncated_records", "LAB_SPLITS", "lab_last_word", "DEFAULT_VOCAB", "KIND_TO_FAMILY",
           "define_mixture", "define_task", "ensure_task", "family_of", "forget_task", "function_source", "kind_of",
           "mixture_tasks", "names", "output_features", "preprocessors", "records_to_dataset"]

# -----------------------------------------------------------------------------------------------------------------
# Mixtures

define_mixture("local_pretrain", [("local_text", 0.9), ("local_code", 0.1)])
define_mixture("pmp_ranked", [("stackexchange_ranked", 1.0), ("reddit_ranked", 1.0), ("wikipedia_ranked", 1.0)])
define_mixture("pmp_binary", [("stackexchange_binary", 1.0), ("reddit_binary", 1.0), ("wikipedia_binary", 1.0)])
define_mixture("finetune_compare", [("hh_rlhf", 1.0), ("summarize_from_feedback", 1.0), ("eli5_pairs", 1.0),
                                    ("ethics_compare", 1.0)])
define_mixture("lab_finetune", [("lab_compare_arith", 1.0), ("lab_compare_code", 1.0), ("lab_compare_hhh", 1.0)])
define_mixture("eval_mc", [("hhh_alignment_mc", 1.0), ("truthful_qa_mc", 1.0)])
define_mixture("tax_mc", [(t, 1.0) for t in TAX_TASKS])
