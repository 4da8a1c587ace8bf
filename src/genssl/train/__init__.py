"""The shared pretraining engine: one trainer for every method (:mod:`genssl.methods`)."""
