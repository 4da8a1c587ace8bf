"""What the views of a method are: :class:`ViewSpec` (one view's augmentations and their strengths), built from a
method's ``views`` config by :func:`view_specs`, and the normalisation every view ends with."""

import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ViewSpec:
    """The augmentations of one view. The defaults equal those of the schema's ``views_common`` (solo-learn's),
    which is where the study's values come from; a test keeps the two equal."""

    crop_scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop area fraction
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range (sampled log-uniformly)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # in pixels AT 224 px; scaled by out_size / 224
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5  # on [0, 1] intensities


#: Per-channel mean and std every view is normalised with (ImageNet's, as solo-learn and lightly use).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

_RANGES = ("crop_scale", "crop_ratio", "blur_sigma")
_PER_VIEW = ("blur_p", "solarize_p")
_SHARED = tuple(f.name for f in fields(ViewSpec) if f.name not in _PER_VIEW)


def view_specs(config: dict[str, Any]) -> list[ViewSpec]:
    """From a method's `views` config block: keys crop_scale, crop_ratio, flip_p, jitter_p, brightness, contrast,
    saturation, hue, grayscale_p, blur_sigma, solarize_threshold (shared by both views) and blur_p, solarize_p
    which are lists of one value per view (their length = number of views, normally 2).
    Missing keys take the ViewSpec defaults.

    The number of views is the length of ``blur_p`` / ``solarize_p`` (both must agree), or 2 when neither is given.
    An unknown key raises ``ValueError`` (the schema allows none).
    """
    unknown = sorted(set(config) - set(_SHARED) - set(_PER_VIEW))
    if unknown:
        raise ValueError(f"views: unknown key(s) {', '.join(unknown)}; known: {', '.join(_SHARED + _PER_VIEW)}")
    lengths = set()
    for key in _PER_VIEW:
        if key in config:
            if not isinstance(config[key], list | tuple):
                raise ValueError(f"views.{key}: expected a list of one probability per view, got {config[key]!r}")
            lengths.add(len(config[key]))
    if len(lengths) > 1:
        raise ValueError(f"views: blur_p and solarize_p give different numbers of views ({sorted(lengths)})")
    n_views = lengths.pop() if lengths else 2
    shared: dict[str, Any] = {}
    for key in _SHARED:
        if key in config:
            shared[key] = tuple(float(v) for v in config[key]) if key in _RANGES else float(config[key])
    return [
        ViewSpec(**shared, **{key: float(config[key][i]) for key in _PER_VIEW if key in config}) for i in range(n_views)
    ]


def blur_kernel_size(spec: ViewSpec, out_size: int) -> int:
    """``2 ceil(3 sigma_max) + 1`` with ``sigma_max = blur_sigma[1] * out_size / 224``, at least 3, and with the
    radius capped at ``out_size - 1`` (reflect padding needs it smaller than the image)."""
    radius = max(1, math.ceil(3 * spec.blur_sigma[1] * out_size / 224))
    return 2 * min(radius, max(out_size - 1, 0)) + 1
