"""Sentence embeddings of pool rows (the embed stage)."""
