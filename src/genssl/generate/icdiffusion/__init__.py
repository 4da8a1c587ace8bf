"""``icdiffusion``: an instance-conditioned diffusion generator trained in the workflow, IC-GAN style.

:func:`train_icdiffusion` trains a small conditioned UNet (:mod:`.model`) to turn noise into one of an image's
nearest neighbours (:mod:`genssl.generate.neighbours`) in a frozen encoder's feature space (:mod:`.train`);
:func:`load_icdiffusion` samples variants from it (:mod:`.backend`).
"""

from genssl.generate.icdiffusion.backend import load_icdiffusion
from genssl.generate.icdiffusion.train import train_icdiffusion

__all__ = ["load_icdiffusion", "train_icdiffusion"]
