"""Standard SSL augmentations as batched tensor ops on the training device (:mod:`genssl.augment.ops`), the views
they make (:mod:`genssl.augment.spec`), their random parameters (:mod:`genssl.augment.params`) and the view
pipelines built from them (:mod:`genssl.augment.pipeline`)."""

from genssl.augment.pipeline import BatchAugment, ViewSpec, blur_kernel_size, view_specs

__all__ = ["BatchAugment", "ViewSpec", "blur_kernel_size", "view_specs"]
