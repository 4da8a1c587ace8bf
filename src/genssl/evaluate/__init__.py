"""Evaluation of frozen encoders: features, linear probes and kNN on downstream datasets, representation similarity."""
