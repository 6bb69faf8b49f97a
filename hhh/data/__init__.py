"""Data floor: vocabularies, dialogue format, feature families, sources, the laboratory data and seqio tasks.

Import `hhh.data.tasks` to register every task and mixture; `hhh.data.pipeline.make_iterator` is what the trainer
calls. Nothing here imports from the floors above (models, objectives, trainer).

This package imports nothing itself, and `specs` (family_spec, FAMILIES, STAT_PREFIX, KIND_TO_FAMILY), `vocab`
(seqio only on demand; pure-Python byte and "hf:" vocabularies without it), `dialogue` and `pipeline`
(TensorFlow/seqio only when data is read) load no TensorFlow or seqio, so the core runs without them
(tests/test_core_imports.py).
`features`, `tokenize` and `tasks` are the tf.data side.
"""
