"""A run's record: the config.json in its directory, written by the trainer (hhh.run.rundir.record_config: the
resolved config the run began with) or by an import (hhh.hf.importer: the `model` section, the tokenizer's
`data.vocab` and the source HF config). `read_run_config` is the one reader: the size argument of a config string
that names a run (hhh.config), the checkpoint loader (hhh.run.model), a resumed run's comparison (hhh.run.rundir) and
HF export (hhh.hf.exporter) all read it here. Local paths and gs:// alike; what to do when it is missing or not JSON is
each caller's to say.
"""

from __future__ import annotations

import json

from etils import epath

RUN_CONFIG = "config.json"


def read_run_config(run_dir) -> dict:
  """The parsed config.json of the run at `run_dir` (a path or an epath.Path). OSError (FileNotFoundError) when there
  is none, json.JSONDecodeError when it is not JSON."""
  return json.loads((epath.Path(run_dir) / RUN_CONFIG).read_text())
