"""Prints the size ladder: layers, d_model, heads and parameter counts computed with jax.eval_shape (no allocation).

  python tools/param_count.py [--sizes=13m,52b]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

import jax  # noqa: E402

from hhh import config as hc  # noqa: E402
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs  # noqa: E402


def count(size: str) -> dict:
  """Parameter counts of a size from the shapes `model.init` would create (eval_shape: nothing is allocated)."""
  cfg = TransformerConfig.from_config(hc.model_config(size))
  shapes = jax.eval_shape(lambda r: Transformer(cfg).init(r, init_inputs(cfg)), jax.random.key(0))["params"]
  sizes = {"/".join(str(getattr(k, "key", k)) for k in path): math.prod(leaf.shape)
           for path, leaf in jax.tree_util.tree_leaves_with_path(shapes)}
  embedding = sum(v for k, v in sizes.items() if k.startswith(("embedding", "unembedding", "score_head")))
  total = sum(sizes.values())
  return dict(size=size, n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head,
              vocab_size=cfg.vocab_size, non_embedding=total - embedding, total=total,
              label=hc.PAPER_LABELS.get(size))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", default=",".join(hc.SIZES), help="comma-separated sizes (default: all)")
  args = parser.parse_args(argv)
  print(f"{'size':>6} {'layers':>6} {'d_model':>7} {'heads':>5} {'vocab':>6} {'non-embedding':>15} {'vs label':>8} "
        f"{'total':>15}")
  for size in args.sizes.split(","):
    r = count(size)
    rel = f"{100 * (r['non_embedding'] / r['label'] - 1):+.1f}%" if r["label"] else ""
    print(f"{size:>6} {r['n_layers']:>6} {r['d_model']:>7} {r['n_heads']:>5} {r['vocab_size']:>6} "
          f"{r['non_embedding']:>15,} {rel:>8} {r['total']:>15,}")


if __name__ == "__main__":
  main()
