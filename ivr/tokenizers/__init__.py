"""Tokenizer construction, loading, distillation, verification and remapping."""
