"""Embedding backends, one per file."""
