"""Executing untrusted (model-written) code: the one home for it. See hhh.sandbox.execute and docs/sandbox.md."""
from hhh.sandbox.execute import ISOLATIONS, STATUSES, Limits, Result, Sandbox, counts, layers, probe

__all__ = ["ISOLATIONS", "STATUSES", "Limits", "Result", "Sandbox", "counts", "layers", "probe"]
