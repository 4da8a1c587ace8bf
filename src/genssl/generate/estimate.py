"""What a variant store will cost, before the run: device-hours and disk size projected from a short timed batch.

For ``N`` training images and K variants the store holds ``S = N K`` generated images. A few ``generate()`` calls
of the generation plan (the first one untimed: it pays for warm-up, kernel selection and ``torch.compile``) give
the seconds per generated image ``t`` on this machine's device, including the encoding of the variants into the
store's format, and their mean encoded size ``b``; then

    device-hours = S t / 3600  (split evenly over the ``shards`` jobs),   disk = S b.

``genssl generate --estimate`` prints this for the configured dataset, K and backend without generating the
store; every shard logs the same projection from its second call (its first pays the warm-up).
"""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from genssl.generate.base import VariantGenerator
from genssl.generate.registry import load_generator
from genssl.store.codec import encode_image

if TYPE_CHECKING:
    from genssl.generate.generation import GenerationPlan

#: ``generate()`` calls timed by :func:`estimate` after the untimed first one.
TIMED_CALLS = 2


def encoded_bytes(variants: np.ndarray, encoding: str) -> int:
    """Bytes of uint8 images (..., H, W, 3) encoded as the store encodes them."""
    images = variants.reshape(-1, *variants.shape[-3:])
    return sum(len(encode_image(image, encoding)) for image in images)


@dataclass(frozen=True)
class Projection:
    """The cost of a whole variant store from a timed sample of its generation."""

    generator: str
    images: int
    variants: int
    shards: int
    seconds_per_image: float
    bytes_per_image: float
    device: str
    encoding: str

    @property
    def generated(self) -> int:
        """S = N K, the generated images of the store."""
        return self.images * self.variants

    @property
    def device_hours(self) -> float:
        """S t / 3600."""
        return self.generated * self.seconds_per_image / 3600

    @property
    def disk_bytes(self) -> float:
        """S b."""
        return self.generated * self.bytes_per_image

    def summary(self) -> str:
        """One line: the projected device-hours (per shard too), disk size and the measured rate behind them."""
        return (
            f"{self.generator}: {self.images:,} images x {self.variants} variants = {self.generated:,} generated; "
            f"{1 / self.seconds_per_image:.2f} images/s on {self.device} -> {self.device_hours:,.2f} device-hours "
            f"({self.device_hours / self.shards:,.2f} per shard of {self.shards}), "
            f"{self.disk_bytes / 1e9:,.2f} GB on disk ({self.encoding}, {self.bytes_per_image / 1e3:.1f} kB per image)"
        )


def device_name(generator: VariantGenerator) -> str:
    """The generator's device and weights' dtype, for the projection's line."""
    return f"{generator.device.type} ({str(generator.dtype).removeprefix('torch.')})"


def projection(plan: "GenerationPlan", seconds: float, generated: int, stored_bytes: int, device: str) -> Projection:
    """The store's projection from ``generated`` images made and encoded in ``seconds``, ``stored_bytes`` encoded."""
    return Projection(
        generator=plan.name,
        images=len(plan.sources),
        variants=plan.gen["variants"],
        shards=plan.gen["shards"],
        seconds_per_image=seconds / generated,
        bytes_per_image=stored_bytes / generated,
        device=device,
        encoding=plan.encoding,
    )


def timed_call(
    generator: VariantGenerator, plan: "GenerationPlan", indices: np.ndarray
) -> tuple[np.ndarray, float, int]:
    """The variants of the training images ``indices`` (one ``generate()`` call), the seconds they took to
    generate and encode as the store encodes them, and their encoded bytes."""
    started = time.perf_counter()
    variants = generator.generate(plan.data.get_batch(indices), indices, plan.seed, plan.size)
    stored = encoded_bytes(variants, plan.encoding)
    return variants, time.perf_counter() - started, stored


def estimate(plan: "GenerationPlan") -> Projection:
    """Time one untimed and :data:`TIMED_CALLS` timed ``generate()`` calls of ``plan`` on the first training images
    (the first call again when the split has no more) and project the whole store."""
    generator = load_generator(plan.name, plan.gen, plan.weights_dir)
    per_call = plan.per_call
    calls = [plan.sources[i * per_call : (i + 1) * per_call] for i in range(TIMED_CALLS + 1)]
    calls = [indices for indices in calls if len(indices)]
    timed_call(generator, plan, calls[0])
    timed = [timed_call(generator, plan, indices) for indices in calls[1:] or calls]
    seconds = sum(call_seconds for _, call_seconds, _ in timed)
    generated = sum(variants.shape[0] * variants.shape[1] for variants, _, _ in timed)
    stored = sum(call_bytes for _, _, call_bytes in timed)
    return projection(plan, seconds, generated, stored, device_name(generator))
