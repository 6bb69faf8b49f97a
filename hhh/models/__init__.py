"""The model: a decoder-only transformer with an LM head and a scalar score head, one concern per module.

transformer.py (`Transformer`: embedding, layers scanned or unrolled, vocabulary and score heads; `unembed`,
`per_position`), config.py (`TransformerConfig` and its choices), block.py (`Block`, `Attention`), layers.py (`Norm`,
`Mlp`, `rotary`), kv_cache.py (the decode cache and `unrolled_params`), layout.py (the platform and the CPU layout:
`flat_matmuls`), attention.py (`attend`: which kernel runs, docs/attention.md) and its kernels (attention_xla.py,
attention_blockwise.py, attention_kernels.py; attention_common.py: what they share).
"""
