"""Dataset preparation: image sources, the resize policy, splits, and the `genssl prepare` stage."""
