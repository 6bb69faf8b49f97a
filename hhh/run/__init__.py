"""A run's directory and what it holds: its record (config.json, run.json), metrics, checkpoints and their checksums, and the
one loader of a trained run."""
