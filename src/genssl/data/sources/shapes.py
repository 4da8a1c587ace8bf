"""``shapes``: procedurally rendered coloured geometric shapes, the offline transfer target.

Ten classes — circle, ring, triangle, square, star, cross, crescent, arrow, bar, ell (an L) — chosen to stay
distinct at 16 px (a pentagon, a hexagon and a circle do not). Image ``i`` has class ``i % 10`` and is drawn from
a generator seeded with ``(seed, "shapes", i)``, so the data set is the same on every machine and needs no
network. Every image is drawn the same way whatever its class; in units of the image side ``S``:

- a filled shape that fits exactly in a circle of radius ``r ~ U(0.32, 0.44) S`` centred at
  ``(S / 2, S / 2) + U(-0.06, 0.06)^2 S``, rotated by ``U(-20°, 20°)`` (so arrows point right and ells stand up,
  give or take 20°);
- on a linear gradient between two colours ``c0`` and ``c0 + 0.4 (c1 - c0)`` along a random direction;
- colours ``c0``, ``c1`` and the shape's are uniform in RGB, conditioned on a luminance difference of at least 80
  (of 255) between the shape and the mean background, the shape lighter or darker;
- plus Gaussian pixel noise (sd 8); drawn 4x supersampled and reduced with a box filter (antialiased edges).

Why it is a fair transfer test for encoders pretrained on ``digits``: it is a different domain (colour, gradient
backgrounds, both contrast polarities, geometric rather than handwritten forms) and its classes never occur in
pretraining. The class is carried by shape alone: colour, polarity, background, position, size and rotation are
drawn independently of the class, from the same distributions for every class. A linear probe on raw pixels
learns it only partly (it cannot undo the random polarity and colours), so an encoder scores above the raw-pixel
probe only with shape-sensitive, colour- and polarity-invariant features. Drawing every class from one generator
state gives images that agree outside the shapes (tests/test_shapes.py). No official split: splits are seeded and
stratified.
"""

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from genssl.data.sources.base import Source
from genssl.seeding import rng

CLASSES = ["circle", "ring", "triangle", "square", "star", "cross", "crescent", "arrow", "bar", "ell"]
SUPERSAMPLE = 4
#: Radius of the shape, as fractions of the image side.
RADIUS = (0.32, 0.44)
#: Largest offset of the shape's centre from the image centre, along each axis, as a fraction of the side.
JITTER = 0.06
#: Largest rotation of the shape either way (radians: 20°).
MAX_ROTATION = math.pi / 9
#: The background runs from colour c0 to c0 + BACKGROUND_CONTRAST (c1 - c0).
BACKGROUND_CONTRAST = 0.4
#: Least luminance difference (0..255) between the shape and the mean background colour.
MIN_CONTRAST = 80
#: Standard deviation of the Gaussian pixel noise (0..255).
NOISE = 8


def _luminance(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _colours(generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background end colours and shape colour, uniform in RGB given the contrast condition (rejection sampling;
    about 23 % of draws are kept)."""
    while True:
        c0, c1, fill = generator.integers(0, 256, size=(3, 3)).astype(np.float64)
        c1 = c0 + BACKGROUND_CONTRAST * (c1 - c0)
        if abs(_luminance(fill) - _luminance((c0 + c1) / 2)) >= MIN_CONTRAST:
            return c0, c1, fill


def _polygon(
    points: list[tuple[float, float]], cx: float, cy: float, r: float, angle: float
) -> list[tuple[float, float]]:
    """``points`` scaled so that the farthest from the origin is at distance ``r``, rotated by ``angle`` and moved to
    (cx, cy)."""
    scale = r / max(math.hypot(x, y) for x, y in points)
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + scale * (c * x - s * y), cy + scale * (s * x + c * y)) for x, y in points]


#: The polygon classes in their own units (scaled to the radius when drawn): the outline in order.
POLYGONS = {
    "triangle": [(math.cos(2 * math.pi * k / 3), math.sin(2 * math.pi * k / 3)) for k in range(3)],
    "square": [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)],
    "star": [
        (radius * math.cos(math.pi * k / 5), radius * math.sin(math.pi * k / 5))
        for k, radius in zip(range(10), [1.0, 0.4] * 5, strict=True)
    ],
    "cross": [
        (1, -0.3),
        (1, 0.3),
        (0.3, 0.3),
        (0.3, 1),
        (-0.3, 1),
        (-0.3, 0.3),
        (-1, 0.3),
        (-1, -0.3),
        (-0.3, -0.3),
        (-0.3, -1),
        (0.3, -1),
        (0.3, -0.3),
    ],
    "arrow": [(-1, -0.25), (0.1, -0.25), (0.1, -0.65), (1, 0), (0.1, 0.65), (0.1, 0.25), (-1, 0.25)],
    "bar": [(-1, -0.28), (1, -0.28), (1, 0.28), (-1, 0.28)],
    "ell": [(-1, -1), (-0.3, -1), (-0.3, 0.3), (1, 0.3), (1, 1), (-1, 1)],
}


def _draw(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, angle: float) -> None:
    """Fill shape ``name`` centred at (cx, cy), rotated by ``angle``, into a mask (255 inside). Every shape fits
    exactly in the circle of radius ``r`` about its centre."""
    if name in POLYGONS:
        draw.polygon(_polygon(POLYGONS[name], cx, cy, r, angle), fill=255)
    elif name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif name == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - 0.5 * r, cy - 0.5 * r, cx + 0.5 * r, cy + 0.5 * r], fill=0)
    elif name == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
        draw.ellipse([cx + ox - 0.85 * r, cy + oy - 0.85 * r, cx + ox + 0.85 * r, cy + oy + 0.85 * r], fill=0)
    else:
        raise ValueError(f"no such shape class: {name!r}")


def render_shape(label: int, size: int, generator: np.random.Generator) -> np.ndarray:
    """Draw one (size, size, 3) uint8 image of class ``CLASSES[label]`` with the given generator (module
    docstring)."""
    big = size * SUPERSAMPLE
    c0, c1, fill = _colours(generator)
    theta = generator.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:big, 0:big] / (big - 1) - 0.5
    t = np.clip(xx * math.cos(theta) + yy * math.sin(theta) + 0.5, 0, 1)[..., None]
    background = c0 * (1 - t) + c1 * t

    mask = Image.new("L", (big, big), 0)
    r = generator.uniform(*RADIUS) * big
    cx, cy = big / 2 + generator.uniform(-JITTER, JITTER, size=2) * big
    angle = generator.uniform(-MAX_ROTATION, MAX_ROTATION)
    _draw(ImageDraw.Draw(mask), CLASSES[label], cx, cy, r, angle)
    alpha = np.asarray(mask, dtype=np.float64)[..., None] / 255.0
    image = background * (1 - alpha) + fill * alpha
    image += generator.normal(0, NOISE, size=image.shape)
    big_image = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8), mode="RGB")
    return np.asarray(big_image.resize((size, size), Image.Resampling.BOX))


class ShapesSource(Source):
    classes = CLASSES

    def __init__(self, name: str, config: dict[str, Any], seed: int) -> None:
        super().__init__(name, config, seed)
        self._n = config["n_per_class"] * len(CLASSES)
        self._size = config["image_size"]

    def __len__(self) -> int:
        return self._n

    def load(self, index: int) -> tuple[Image.Image, int]:
        if not 0 <= index < self._n:
            raise IndexError(index)
        label = index % len(CLASSES)
        image = render_shape(label, self._size, rng(self.seed, "shapes", index))
        return Image.fromarray(image, mode="RGB"), label
