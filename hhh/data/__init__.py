"""Data floor: vocabularies, dialogue format, feature families, sources, the laboratory data and seqio tasks.

Import `hhh.data.tasks` to register every task and mixture; `hhh.data.pipeline.make_iterator` is what the trainer
calls. Nothing here imports from the floors above (models, objectives, trainer).
"""
