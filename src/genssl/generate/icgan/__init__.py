"""``icgan`` and ``icgan_pretrained``: instance-conditioned GANs in the IC-GAN formulation.

:func:`train_icgan` trains BigGAN's generator and projection discriminator (:mod:`.biggan`, :mod:`.layers`) so that
G(z, h_i) matches the nearest neighbours of image i in a frozen encoder's feature space (:mod:`.train`);
:func:`load_icgan` samples variants from it (:mod:`.backend`) and :func:`load_icgan_pretrained` from the public IC-GAN
ImageNet release with its SwAV encoder (:mod:`.pretrained`, :mod:`.swav`, :mod:`.checkpoints`); both sample as
:mod:`.sampling` says.
"""

from genssl.generate.icgan.backend import load_icgan
from genssl.generate.icgan.pretrained import load_icgan_pretrained
from genssl.generate.icgan.train import train_icgan

__all__ = ["load_icgan", "load_icgan_pretrained", "train_icgan"]
