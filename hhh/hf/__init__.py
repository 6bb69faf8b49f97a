"""Hugging Face checkpoints <-> hhh runs (docs/interop.md)."""
