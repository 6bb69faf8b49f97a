"""Hugging Face checkpoints <-> hhh runs: GPT-NeoX (Pythia), Llama and GPT-2 (docs/interop.md).

importer (tools/hf_import.py: a HF directory -> an hhh run), exporter (tools/hf_export.py: an hhh run -> a HF
directory), reader (config.json and safetensors of a HF directory), architectures (the table of the three and what is
asked of them by name), neox, llama, gpt2 (each one's config fields and tensor names), tensor_map (the layouts they
share), configs (the config conversions' shared pieces).
"""
