"""Real datasets from their original files. Paths come from the environment (config) with defaults:
  HHH_BIGBENCH_DIR  (default: ../shared/data/bigbench relative to the repository)
  HHH_DATA_DIR      (default: ~/hhh_data); each dataset's glob can be overridden by HHH_<DATASET>_GLOB.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Callable, Dict, List

import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from hhh.data import sources
from hhh.data.task_registry import define_task, function_source
from hhh.core.errors import DataError
from hhh.core.paths import CHECKOUT

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
  return os.path.normpath(os.environ.get("HHH_BIGBENCH_DIR", os.path.join(CHECKOUT, "..", "shared", "data", "bigbench")))


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
                                                             splits, name), shuffle_buffer_size=10_000)


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

# A local document enters the pipeline in pieces of at most this many characters (cut after a newline, else a space,
# where one is in the piece's second half): tokenising a 20 MB line as one string took ~57x its size in memory (TF's
# per-byte string tensors); pieces bound that. The pipeline splits documents into L-token pieces anyway
# (tokenize.split_long_documents), so only the pieces' boundaries move.
LOCAL_PIECE_CHARS = 1 << 16


def split_text(text: str, max_chars: int = LOCAL_PIECE_CHARS) -> List[str]:
  """`text` in consecutive pieces of at most `max_chars` characters whose concatenation is `text`."""
  out, start = [], 0
  while len(text) - start > max_chars:
    end = start + max_chars
    cut = max(text.rfind("\n", start + max_chars // 2, end), text.rfind(" ", start + max_chars // 2, end))
    end = cut + 1 if cut >= 0 else end
    out.append(text[start:end])
    start = end
  out.append(text[start:])
  return out


def _local(dataset):
  @tf.autograph.experimental.do_not_convert  # plain file reading; autograph's rewrite lost the closure's `dataset`
  def parse(split):
    res = sources.ParseResult()
    matched = 0
    for p in sorted(__import__("glob").glob(data_glob(dataset), recursive=True)):
      if sources.hash_split(p, validation_percent=5) != split:
        continue
      matched += 1
      with open(p, "rb") as f:
        text = sources.decode(f.read(), p, res.bad)
      if text is None:
        continue
      if not text.strip():
        res.bad.append((p, "empty file"))
        continue
      res.records.extend({"targets": piece} for piece in split_text(text))
    if not res.records and matched:
      raise DataError(f"{dataset}: {matched} {split} file(s) match {data_glob(dataset)!r} but none holds usable "
                      f"text ({'; '.join(f'{p}: {why}' for p, why in res.bad[:3])})")
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
    load = functools.partial(tfds.load, tfds_name, split=splits[split], shuffle_files=shuffle_files,
                             read_config=read, try_gcs=False)
    try:
      return load(download=False)
    except (AssertionError, tfds.core.registered.DatasetNotFoundError) as e:  # not prepared here (or no builder)
      first = e
    try:
      return load(download=True)  # online machines prepare it once
    except Exception as e:  # pylint: disable=broad-except  (offline: no download; any download failure)
      raise sources.MissingData(
          f"TFDS {tfds_name}: {str(first).splitlines()[0]} Downloading it failed too ({type(e).__name__}: "
          f"{str(e).splitlines()[0][:200] if str(e) else ''}). Prepare it where the network is reachable "
          f"(`tfds build {tfds_name.split(':')[0]}`) and set TFDS_DATA_DIR.") from e
  return seqio.FunctionDataSource(dataset_fn, splits=list(splits))


for _name, (_tfds_name, _splits, _pre) in TAX_TASKS.items():
  define_task(_name, "multiple_choice",
              functools.partial(lambda vocab_name, n, s: tfds_source(n, s), n=_tfds_name, s=_splits),
              extra_preprocessors=[_pre], shuffle_buffer_size=1000)


def clear_parse_cache() -> None:
  """Forgets every parsed file (tests that rewrite source files between reads)."""
  _PARSED.clear()
  for fn in (_se_all, _reddit_all, _wiki_all, _summarize_all):
    fn.cache_clear()
