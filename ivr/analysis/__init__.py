"""Corpus statistics under a tokenizer, and the choice of ids to reassign."""
