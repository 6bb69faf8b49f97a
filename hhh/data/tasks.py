"""seqio task and mixture registry. Importing this module registers every task with the byte vocabulary.

Tasks are registered per vocabulary: under their plain name for "byte", and on demand (`ensure_task(name, vocab)`)
as "{name}#{vocab-hash}" for any other vocabulary string, so the vocabulary stays a config choice.

Each task has a KIND (the feature family it feeds): lm, imitation (lm family, loss on responses only),
comparison, binary, multiple_choice, distill. See docs/data.md for the list.
"""
from __future__ import annotations

import functools
import zlib
from typing import Callable, Dict, List

import numpy as np
import seqio
import tensorflow as tf

from hhh.data import lab_corpus
from hhh.data import tokenize as tok
from hhh.data import vocab as vocab_lib
from hhh.data.specs import KIND_TO_FAMILY  # also read as tasks.KIND_TO_FAMILY

DEFAULT_VOCAB = "byte"
# name -> (kind, builder(registered_name, vocab_name))
_TASKS: Dict[str, tuple] = {}
# name -> (kind, [(task name, rate)])
_MIXTURES: Dict[str, tuple] = {}


def output_features(kind: str, vocab_name: str) -> Dict[str, seqio.Feature]:
  v = vocab_lib.get_vocabulary(vocab_name)
  if kind == "lm":
    return {"targets": seqio.Feature(v, add_eos=True)}
  if kind == "imitation":
    return {"inputs": seqio.Feature(v, add_eos=False), "targets": seqio.Feature(v, add_eos=True)}
  if kind == "comparison":
    return {"context": seqio.Feature(v, add_eos=False), "responses": seqio.Feature(v, add_eos=False, rank=2)}
  if kind == "binary":
    return {"context": seqio.Feature(v, add_eos=False), "response": seqio.Feature(v, add_eos=False)}
  if kind == "multiple_choice":
    return {"context": seqio.Feature(v, add_eos=False), "choices": seqio.Feature(v, add_eos=False, rank=2)}
  if kind == "distill":
    return {"text": seqio.Feature(v, add_eos=False)}
  raise ValueError(f"unknown task kind {kind!r}")


def preprocessors(kind: str) -> List[Callable]:
  pre = [tok.tokenize_features]
  if kind == "lm":
    pre.append(tok.split_long_documents)  # then seqio trims the pieces to sequence_length["targets"]
  else:
    pre.append(tok.trim_to_sequence_length)  # every other kind: cut to sequence_length["tokens"] + 1
  return pre


def records_to_dataset(kind: str, records: List[dict]) -> tf.data.Dataset:
  """Python records (strings, lists of strings, floats) -> tf.data with the raw (untokenized) task features."""
  if not records:
    raise ValueError("no records")
  cols = {k: [r[k] for r in records] for k in records[0]}
  tensors = {}
  for k, col in cols.items():
    if isinstance(col[0], (list, tuple)):
      tensors[k] = tf.ragged.constant(col, dtype=tf.float32 if isinstance(col[0][0], float) else tf.string)
    elif isinstance(col[0], float):
      tensors[k] = tf.constant(col, tf.float32)
    else:
      tensors[k] = tf.constant(col, tf.string)
  return tf.data.Dataset.from_tensor_slices(tensors)


def function_source(records_fn: Callable[[str], List[dict]], kind: str, splits) -> seqio.FunctionDataSource:
  """A seqio source over in-memory records; with a seed, the source order is a full seeded permutation."""

  def dataset_fn(split, shuffle_files, seed=None):
    recs = records_fn(split)
    if shuffle_files and seed is not None:
      order = np.random.default_rng(int(seed)).permutation(len(recs))
      recs = [recs[i] for i in order]
    return records_to_dataset(kind, recs)
  return seqio.FunctionDataSource(dataset_fn, splits=list(splits))


def define_task(name: str, kind: str, source_fn: Callable[[str], seqio.DataSource],
                extra_preprocessors=(), shuffle_buffer_size: int = 10_000):
  """Declares a task; it is registered for the byte vocabulary now and for others on demand."""

  def build(registered: str, vocab_name: str):
    seqio.TaskRegistry.add(
        registered, source=source_fn(vocab_name), preprocessors=list(extra_preprocessors) + preprocessors(kind),
        output_features=output_features(kind, vocab_name), shuffle_buffer_size=shuffle_buffer_size)
  _TASKS[name] = (kind, build)
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  build(name, DEFAULT_VOCAB)


def define_mixture(name: str, tasks_and_rates):
  kinds = {_TASKS[t][0] for t, _ in tasks_and_rates}
  fams = {KIND_TO_FAMILY[k] for k in kinds}
  if len(fams) != 1:
    raise ValueError(f"mixture {name}: tasks feed different families {sorted(fams)}")
  kind = sorted(kinds)[0]
  _MIXTURES[name] = (kind, list(tasks_and_rates))
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, list(tasks_and_rates))


def kind_of(name: str) -> str:
  base = name.split("#")[0]
  if base in _TASKS:
    return _TASKS[base][0]
  if base in _MIXTURES:
    return _MIXTURES[base][0]
  raise ValueError(f"unknown task or mixture {name!r}; registered: {sorted(list(_TASKS) + list(_MIXTURES))}")


def family_of(name: str) -> str:
  return KIND_TO_FAMILY[kind_of(name)]


def names() -> Dict[str, List[str]]:
  return {"tasks": sorted(_TASKS), "mixtures": sorted(_MIXTURES)}


def ensure_task(name: str, vocab_name: str = DEFAULT_VOCAB) -> str:
  """The registered seqio name of task/mixture `name` with vocabulary `vocab_name` (registering it if needed)."""
  kind_of(name)
  if vocab_name == DEFAULT_VOCAB:
    return name
  suffix = f"#{zlib.crc32(vocab_name.encode()):08x}"
  registered = name + suffix
  if name in _TASKS:
    if registered not in seqio.TaskRegistry.names():
      _TASKS[name][1](registered, vocab_name)
  else:
    if registered not in seqio.MixtureRegistry.names():
      subs = [(ensure_task(t, vocab_name), r) for t, r in _MIXTURES[name][1]]
      seqio.MixtureRegistry.add(registered, subs)
  return registered


def sources_binary_pmp(pair):
  from hhh.data import sources as _src  # noqa: F811  (the GOOD:/BAD: transformation lives with the PMP sources)
  return _src.binary_pmp(pair)


# -----------------------------------------------------------------------------------------------------------------
# The embedded laboratory (hhh/data/lab_corpus.py): always available, no downloads.

LAB_SPLITS = lab_corpus.SPLITS


def _lab_source(records_fn):
  return lambda vocab_name: function_source(records_fn, "", LAB_SPLITS)


def _lab_lm(split):
  return [{"targets": d} for d in lab_corpus.lm_documents(split)]


def _lab_imitation(split):
  return [{"id": i, "inputs": c, "targets": r} for i, c, r in lab_corpus.imitation_pairs(split)]


def _cmp_record(c: lab_corpus.Comparison) -> dict:
  return {"id": c.id, "context": c.context, "responses": list(c.responses), "scores": [float(s) for s in c.scores]}


def _lab_compare(split, family=None):
  return [_cmp_record(c) for c in lab_corpus.comparisons(split) if family is None or c.family == family]


def _lab_compare_pair(split):
  return [_cmp_record(c) for c in lab_corpus.pairs(split)]


def _lab_binary(split):
  return [{"id": i, "context": c, "response": r, "label": float(y)} for i, c, r, y in lab_corpus.binary_samples(split)]


def _lab_distill(split):
  return [{"id": i, "text": t} for i, t in lab_corpus.distill_texts(split)]


define_task("lab_lm", "lm", _lab_source(_lab_lm))
define_task("lab_imitation", "imitation", _lab_source(_lab_imitation))
define_task("lab_compare", "comparison", _lab_source(_lab_compare))
for _fam in lab_corpus.FAMILIES:
  define_task(f"lab_compare_{_fam}", "comparison", _lab_source(functools.partial(_lab_compare, family=_fam)))
define_task("lab_compare_pair", "comparison", _lab_source(_lab_compare_pair))
define_task("lab_binary", "binary", _lab_source(_lab_binary))
define_task("lab_compare_binary", "comparison", _lab_source(
    lambda split: [b for p in _lab_compare_pair(split) for b in sources_binary_pmp(p)]))
define_task("lab_distill", "distill", _lab_source(_lab_distill))


def lab_last_word(split) -> List[dict]:
  """LAMBADA's format on the held-out lab corpus (the alignment tax on embedded data): each LM document up to its
  last whitespace-separated word is the context (its own whitespace and dialogue markers kept), " word" (trailing
  punctuation removed, as LAMBADA's targets are words) the one choice, correct when greedy decoding reproduces it.
  Documents whose last word is only punctuation are left out (none in the generated corpus; tested)."""
  out = []
  for i, doc in enumerate(lab_corpus.lm_documents(split)):
    head, _, word = doc.rstrip().rpartition(" ")
    word = word.rstrip(".,;:!?\"')")  # LAMBADA's targets are words: the passage ends at the word
    if head.strip() and word:
      out.append({"id": f"lab_lm:{split}:{i}", "context": head, "choices": [" " + word], "targets": [1.0]})
  return out


define_task("tax_lab_lambada", "multiple_choice", _lab_source(lab_last_word))


# -----------------------------------------------------------------------------------------------------------------
# Real datasets from their original files. Paths come from the environment (config) with defaults:
#   HHH_BIGBENCH_DIR  (default: ../shared/data/bigbench relative to the repository)
#   HHH_DATA_DIR      (default: ~/hhh_data); each dataset's glob can be overridden by HHH_<DATASET>_GLOB.

import logging  # noqa: E402
import os  # noqa: E402

import tensorflow_datasets as tfds  # noqa: E402

from hhh.data import sources  # noqa: E402

REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_GLOBS = {
    "stackexchange": "stackexchange/*Posts.xml*",
    "reddit": "reddit/RC_*",
    "reddit_submissions": "reddit/RS_*",
    "wikipedia": "wikipedia/*history*.xml*",
    "hh_rlhf": "hh_rlhf/*/{split}.jsonl.gz",
    "summarize": "summarize_from_feedback/comparisons/*.json",
    "eli5": "eli5/{split}.jsonl*",
    "ethics": "ethics/commonsense/cm_{split}.csv",
    "local_text": "local/text/**/*.txt",
    "local_code": "local/code/**/*.py",
}


def bigbench_dir() -> str:
  return os.path.normpath(os.environ.get("HHH_BIGBENCH_DIR", os.path.join(REPO_DIR, "..", "shared", "data", "bigbench")))


def data_glob(dataset: str, split: str = "") -> str:
  env = os.environ.get(f"HHH_{dataset.upper()}_GLOB")
  pattern = env if env else os.path.join(os.environ.get("HHH_DATA_DIR", "~/hhh_data"), _GLOBS[dataset])
  return os.path.expanduser(pattern.replace("{split}", split))


_PARSED: Dict[tuple, sources.ParseResult] = {}


def _report(task: str, split: str, res: sources.ParseResult):
  if res.bad:
    shown = "; ".join(f"{i}: {r}" for i, r in res.bad[:10])
    logging.warning("%s/%s: excluded %d bad records (%s%s)", task, split, len(res.bad), shown,
                    " ..." if len(res.bad) > 10 else "")
  if res.truncated:
    shown = "; ".join(f"{i}: {r}" for i, r in res.truncated[:10])
    logging.warning("%s/%s: truncated %d records to sources.MAX_TEXT_CHARS=%d characters per text / "
                    "MAX_RESPONSES=%d responses (%s%s)", task, split, len(res.truncated), sources.MAX_TEXT_CHARS,
                    sources.MAX_RESPONSES, shown, " ..." if len(res.truncated) > 10 else "")


def parsed(task: str, split: str) -> sources.ParseResult:
  """The parse (records + bad records) behind `task` and `split`, cached."""
  key = (task, split)
  if key not in _PARSED:
    res = _PARSERS[task](split)
    _report(task, split, res)
    _PARSED[key] = res
  return _PARSED[key]


def has_file_parser(task: str) -> bool:
  """Whether `task` reads a source file through a parser (so `parsed`, `bad_records` and record ids apply)."""
  return task in _PARSERS


def bad_records(task: str, split: str) -> List[tuple]:
  """[(record id, reason)] excluded from `task`/`split` (empty for tasks without a file parser)."""
  return list(parsed(task, split).bad) if task in _PARSERS else []


def truncated_records(task: str, split: str) -> List[tuple]:
  """[(record id, what was cut)] of records kept in `task`/`split` but shortened by the parsers' size cap."""
  return list(parsed(task, split).truncated) if task in _PARSERS else []


_PARSERS: Dict[str, Callable[[str], sources.ParseResult]] = {}


def _file_task(name: str, kind: str, splits, parse: Callable[[str], sources.ParseResult]):
  _PARSERS[name] = parse
  define_task(name, kind, lambda vocab_name: function_source(lambda split: parsed(name, split).records, kind,
                                                             splits), shuffle_buffer_size=10_000)


def _hash_filtered(res: sources.ParseResult, split: str) -> sources.ParseResult:
  def keep(rid):
    return sources.hash_split(rid.split(":")[0]) == split
  return sources.ParseResult([r for r in res.records if keep(r["id"])], [b for b in res.bad if keep(b[0])],
                             [t for t in res.truncated if keep(t[0])])


def _pairs(res):
  return res.derive(p for r in res.records for p in sources.ranked_pairs(r))


def _binary_pmp(res):
  return res.derive(b for r in _pairs(res).records for b in sources.binary_pmp(r))


# --- BIG-bench (evaluation data; a single split called "test")

def _bb_mc(subsets, style="paper"):
  def parse(split):
    res = sources.ParseResult()
    for s in subsets:
      path = os.path.join(bigbench_dir(), "hhh_alignment", s, "task.json")
      if not os.path.exists(path):
        raise sources.MissingData(f"hhh_alignment: {path} not found (set HHH_BIGBENCH_DIR); canonical: "
                                  f"{sources.URLS['hhh_alignment'].format(subset=s)}")
      res.extend(sources.parse_bigbench_choices(path, f"hhh-{s}", style=style))
    return res
  return parse


_file_task("hhh_alignment_mc", "multiple_choice", ["test"], _bb_mc(sources.BIGBENCH_SUBSETS))
_file_task("hhh_alignment_bigbench_mc", "multiple_choice", ["test"], _bb_mc(sources.BIGBENCH_SUBSETS, "bigbench"))
_file_task("hhh_alignment", "comparison", ["test"],
           lambda split: sources.bigbench_as_comparisons(_bb_mc(sources.BIGBENCH_SUBSETS)(split)))
for _s in sources.BIGBENCH_SUBSETS:
  _file_task(f"hhh_alignment_{_s}", "comparison", ["test"],
             functools.partial(lambda split, s: sources.bigbench_as_comparisons(_bb_mc([s])(split)), s=_s))


def _truthful(split):
  path = os.path.join(bigbench_dir(), "truthful_qa", "task_mc.json")
  if not os.path.exists(path):
    raise sources.MissingData(f"truthful_qa_mc: {path} not found (set HHH_BIGBENCH_DIR); canonical: "
                              f"{sources.URLS['truthful_qa_mc']}")
  return sources.parse_bigbench_choices(path, "truthfulqa")


_file_task("truthful_qa_mc", "multiple_choice", ["test"], _truthful)


# --- PMP sources: ranked (pairs A > B) and binary (GOOD:/BAD:) variants; hash split 95/5

@functools.lru_cache(maxsize=None)
def _se_all():
  res = sources.ParseResult()
  for p in sources.expand(data_glob("stackexchange"), "stackexchange", sources.URLS["stackexchange"]):
    site = os.path.basename(os.path.dirname(p)) or "se"
    res.extend(sources.parse_stackexchange(p, site=f"se-{site}"))
  return res


@functools.lru_cache(maxsize=None)
def _reddit_all():
  comments = sources.expand(data_glob("reddit"), "reddit", sources.URLS["reddit"])
  subs = sorted(__import__("glob").glob(data_glob("reddit_submissions")))
  return sources.parse_reddit(comments, subs)


@functools.lru_cache(maxsize=None)
def _wiki_all():
  res = sources.ParseResult()
  for p in sources.expand(data_glob("wikipedia"), "wikipedia", sources.URLS["wikipedia"]):
    res.extend(sources.parse_wikipedia(p))
  return res


for _name, _all in (("stackexchange", _se_all), ("reddit", _reddit_all), ("wikipedia", _wiki_all)):
  _file_task(f"{_name}_ranked", "comparison", ["train", "validation"],
             functools.partial(lambda split, f: _pairs(_hash_filtered(f(), split)), f=_all))
  _file_task(f"{_name}_binary", "comparison", ["train", "validation"],
             functools.partial(lambda split, f: _binary_pmp(_hash_filtered(f(), split)), f=_all))


# --- finetuning sources

def _hh(split):
  res = sources.ParseResult()
  for p in sources.expand(data_glob("hh_rlhf", split), "hh_rlhf", sources.URLS["hh_rlhf"]):
    res.extend(sources.parse_hh_rlhf(p, prefix=f"hh-{os.path.basename(os.path.dirname(p))}-{split}"))
  return res


@functools.lru_cache(maxsize=None)
def _summarize_all():
  res = sources.ParseResult()
  for p in sources.expand(data_glob("summarize"), "summarize", sources.URLS["summarize_from_feedback"]):
    res.extend(sources.parse_summarize(p))
  return res


def _eli5(split):
  res = sources.ParseResult()
  for p in sources.expand(data_glob("eli5", split), "eli5", sources.URLS["eli5"]):
    res.extend(sources.parse_eli5(p))
  return res


def _ethics(split):
  res = sources.ParseResult()
  for p in sources.expand(data_glob("ethics", split), "ethics", sources.URLS["ethics"]):
    res.extend(sources.parse_ethics(p))
  return res


_file_task("hh_rlhf", "comparison", ["train", "test"], _hh)
_file_task("summarize_from_feedback", "comparison", ["train", "validation"],
           lambda split: _hash_filtered(_summarize_all(), split))
_file_task("eli5", "comparison", ["train", "validation", "test"], _eli5)
_file_task("eli5_pairs", "comparison", ["train", "validation", "test"], lambda split: _pairs(_eli5(split)))
def _ethics_binary(split):
  res = _ethics(split)
  return res.derive(sources.comparisons_to_binary(res.records))


_file_task("ethics", "binary", ["train", "test"], _ethics_binary)
_file_task("ethics_compare", "comparison", ["train", "test"], _ethics)


# --- pretraining: local files (~90% natural language, ~10% Python code) and TFDS c4

def _local(dataset):
  def parse(split):
    res = sources.ParseResult()
    for p in sorted(__import__("glob").glob(data_glob(dataset), recursive=True)):
      if sources.hash_split(p, validation_percent=5) != split:
        continue
      with open(p, "rb") as f:
        text = sources._decode(f.read(), p, res.bad)
      if text is None:
        continue
      if not text.strip():
        res.bad.append((p, "empty file"))
        continue
      res.records.append({"targets": text})
    if not res.records:
      raise sources.MissingData(f"{dataset}: no {split} files match {data_glob(dataset)!r} "
                                f"(set HHH_DATA_DIR or HHH_{dataset.upper()}_GLOB)")
    return res
  return parse


_file_task("local_text", "lm", ["train", "validation"], _local("local_text"))
_file_task("local_code", "lm", ["train", "validation"], _local("local_code"))


def _tfds_text(ds, field):
  return ds.map(lambda ex: {"targets": ex[field]})


define_task("c4_lm", "lm",
            lambda vocab_name: seqio.TfdsDataSource(tfds_name="c4/en:3.1.0",
                                                    splits={"train": "train", "validation": "validation"}),
            extra_preprocessors=[functools.partial(_tfds_text, field="text")])


# --- alignment-tax capability evaluations from TFDS builders (multiple choice; plain text, not dialogue)

def _tax_lambada(ds):
  def fn(ex):
    words = tf.strings.split(tf.strings.strip(ex["passage"]))
    return {"context": tf.strings.reduce_join(words[:-1], separator=" "),
            "choices": tf.strings.join([" ", words[-1:]]), "targets": tf.ones([1], tf.float32)}
  return ds.map(fn)


def _tax_hellaswag(ds):
  return ds.map(lambda ex: {"context": ex["context"], "choices": tf.strings.join([" ", ex["endings"]]),
                            "targets": tf.one_hot(ex["label"], tf.size(ex["endings"]), dtype=tf.float32)})


def _qa(q):
  return tf.strings.join(["Question: ", q, "\nAnswer:"])


def _tax_arc(ds):
  return ds.map(lambda ex: {"context": _qa(ex["question"]), "choices": tf.strings.join([" ", ex["choices"]["text"]]),
                            "targets": tf.cast(tf.equal(ex["choices"]["label"], ex["answerKey"]), tf.float32)})


def _tax_openbookqa(ds):
  def fn(ex):
    q = ex["question"]
    ch = tf.stack([q["choice_A"], q["choice_B"], q["choice_C"], q["choice_D"]])
    return {"context": _qa(q["stem"]), "choices": tf.strings.join([" ", ch]),
            "targets": tf.one_hot(ex["answerKey"], 4, dtype=tf.float32)}
  return ds.map(fn)


def _tax_piqa(ds):
  return ds.map(lambda ex: {"context": _qa(ex["goal"]), "choices": tf.strings.join([" ", tf.stack([ex["sol1"],
                                                                                                   ex["sol2"]])]),
                            "targets": tf.one_hot(ex["label"], 2, dtype=tf.float32)})


TAX_TASKS = {
    "tax_lambada": ("lambada:1.0.0", {"validation": "validation", "test": "test"}, _tax_lambada),
    "tax_hellaswag": ("hellaswag:1.1.0", {"train": "train", "validation": "validation", "test": "test"},
                      _tax_hellaswag),
    "tax_arc_easy": ("ai2_arc/ARC-Easy:1.0.0", {"train": "train", "validation": "validation", "test": "test"},
                     _tax_arc),
    "tax_arc_challenge": ("ai2_arc/ARC-Challenge:1.0.0",
                          {"train": "train", "validation": "validation", "test": "test"}, _tax_arc),
    "tax_openbookqa": ("openbookqa:0.1.0", {"train": "train", "validation": "validation", "test": "test"},
                       _tax_openbookqa),
    "tax_piqa": ("piqa:1.0.0", {"train": "train", "validation": "validation"}, _tax_piqa),
}


def tfds_source(tfds_name: str, splits: Dict[str, str]) -> seqio.FunctionDataSource:
  """Small evaluation sets through tfds.load (data_dir from TFDS_DATA_DIR); seqio shards them by example.
  (seqio.TfdsDataSource asks the builder for split sizes first, which fails under tfds.testing.mock_data.)"""

  def dataset_fn(split, shuffle_files, seed=None):
    read = tfds.ReadConfig(shuffle_seed=seed) if seed is not None else None
    return tfds.load(tfds_name, split=splits[split], shuffle_files=shuffle_files, read_config=read,
                     try_gcs=False)
  return seqio.FunctionDataSource(dataset_fn, splits=list(splits))


for _name, (_tfds_name, _splits, _pre) in TAX_TASKS.items():
  define_task(_name, "multiple_choice",
              functools.partial(lambda vocab_name, n, s: tfds_source(n, s), n=_tfds_name, s=_splits),
              extra_preprocessors=[_pre], shuffle_buffer_size=1000)


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
