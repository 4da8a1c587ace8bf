"""``shapes``: procedurally rendered coloured geometric shapes, the offline transfer target.

Ten classes — circle, ring, triangle, square, pentagon, hexagon, star, cross, crescent, arrow — drawn as a
filled shape of random colour, position, size and rotation on a background that is a random two-colour
linear gradient with pixel noise. Image ``i`` has class ``i % 10`` and is drawn from a generator seeded with
``(seed, "shapes", i)``, so the data set is the same on every machine and needs no network. Shapes are drawn
4x supersampled and reduced with a box filter (antialiased edges).

Why it is a fair transfer test for encoders pretrained on ``digits``: it is a different domain (colour,
textured backgrounds, geometric rather than handwritten forms, objects at varying position, scale and
rotation), its classes never occur in pretraining, and the class is carried by shape alone while colour,
position, size, rotation and background are nuisances drawn independently of the class. A linear probe on
frozen features can therefore only do well if the encoder learned shape-sensitive, nuisance-invariant
features — the property the study asks about — and the task is neither trivial (chance is 10 %; colour and
position are uninformative) nor impossible at 32 px. No official split: splits are seeded and stratified.
"""

import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from genssl.data.sources.base import Source
from genssl.seeding import rng

CLASSES = ["circle", "ring", "triangle", "square", "pentagon", "hexagon", "star", "cross", "crescent", "arrow"]
SUPERSAMPLE = 4


def _regular_polygon(cx: float, cy: float, r: float, sides: int, angle: float) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(angle + 2 * math.pi * k / sides), cy + r * math.sin(angle + 2 * math.pi * k / sides))
        for k in range(sides)
    ]


def _rotate(points: list[tuple[float, float]], cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in points]


def _luminance(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def render_shape(label: int, size: int, generator: np.random.Generator) -> np.ndarray:
    """Draw one (size, size, 3) uint8 image of class ``CLASSES[label]`` with the given generator."""
    big = size * SUPERSAMPLE
    # Background: linear gradient between two colours along a random direction.
    c0, c1 = generator.integers(0, 256, size=(2, 3)).astype(np.float64)
    theta = generator.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:big, 0:big] / (big - 1) - 0.5
    t = np.clip(xx * math.cos(theta) + yy * math.sin(theta) + 0.5, 0, 1)[..., None]
    background = c0 * (1 - t) + c1 * t
    # Foreground colour with enough luminance contrast to the mean background.
    mean_lum = _luminance((c0 + c1) / 2)
    for _ in range(64):
        fg = generator.integers(0, 256, size=3)
        if abs(_luminance(fg) - mean_lum) >= 60:
            break
    else:
        fg = np.array([255, 255, 255]) if mean_lum < 128 else np.array([0, 0, 0])
    fill = tuple(int(v) for v in fg)

    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    r = generator.uniform(0.22, 0.36) * big
    cx, cy = generator.uniform(r, big - r, size=2)
    angle = generator.uniform(0, 2 * math.pi)
    name = CLASSES[label]
    if name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif name == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - 0.55 * r, cy - 0.55 * r, cx + 0.55 * r, cy + 0.55 * r], fill=0)
    elif name in ("triangle", "square", "pentagon", "hexagon"):
        sides = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[name]
        draw.polygon(_regular_polygon(cx, cy, r, sides, angle), fill=255)
    elif name == "star":
        outer = _regular_polygon(cx, cy, r, 5, angle)
        inner = _regular_polygon(cx, cy, 0.42 * r, 5, angle + math.pi / 5)
        draw.polygon([p for pair in zip(outer, inner, strict=True) for p in pair], fill=255)
    elif name == "cross":
        w = 0.3 * r
        arm = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w)]
        arm += [(-x, -y) for x, y in arm]
        draw.polygon(_rotate(arm, cx, cy, angle), fill=255)
    elif name == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
        draw.ellipse([cx + ox - 0.85 * r, cy + oy - 0.85 * r, cx + ox + 0.85 * r, cy + oy + 0.85 * r], fill=0)
    elif name == "arrow":
        w = 0.22 * r
        arrow = [(-r, -w), (0.1 * r, -w), (0.1 * r, -0.6 * r), (r, 0), (0.1 * r, 0.6 * r), (0.1 * r, w), (-r, w)]
        draw.polygon(_rotate(arrow, cx, cy, angle), fill=255)
    alpha = np.asarray(mask, dtype=np.float64)[..., None] / 255.0
    image = background * (1 - alpha) + np.asarray(fill, dtype=np.float64) * alpha
    image += generator.normal(0, 8, size=image.shape)
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
