"""Representation similarity: linear CKA (biased, debiased, minibatch), orthogonal Procrustes distance, bootstrap
intervals, and the ``genssl similarity`` stage."""
