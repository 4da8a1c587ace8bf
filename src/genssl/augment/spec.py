"""What the views of a method are: :class:`ViewSpec` (one view's augmentations and their strengths), built from a
method's ``views`` config by :func:`view_specs`, and the normalisation every view ends with."""

import math
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ViewSpec:
    """The augmentations of one view. The defaults equal those of the schema's ``views_common`` and, for the colour
    jitter strengths, those of its ``views_asymmetric`` (solo-learn's); each method's own defaults come from the
    schema. A test keeps the two equal."""

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
_EITHER = tuple(f.name for f in fields(ViewSpec) if f.name not in _PER_VIEW + _RANGES)
_KNOWN = _RANGES + _EITHER + _PER_VIEW


def view_specs(config: dict[str, Any]) -> list[ViewSpec]:
    """From a method's `views` config block: ``blur_p`` and ``solarize_p`` are lists of one probability per view;
    crop_scale, crop_ratio and blur_sigma are ranges shared by every view; each other key (flip_p, jitter_p,
    brightness, contrast, saturation, hue, grayscale_p, solarize_threshold) is one value for every view or a list
    of one per view. Missing keys take the ViewSpec defaults.

    The number of views is the common length of the lists, or 2 when there is none. An unknown key, a per-view key
    that is not a list, or lists of different lengths raise ``ValueError`` naming the key (the schema allows none).
    """
    unknown = sorted(set(config) - set(_KNOWN))
    if unknown:
        raise ValueError(f"views: unknown key(s) {', '.join(unknown)}; known: {', '.join(_KNOWN)}")
    for key in _PER_VIEW:
        if key in config and not isinstance(config[key], list | tuple):
            raise ValueError(f"views.{key}: expected a list of one probability per view, got {config[key]!r}")
    lists = {key: len(config[key]) for key in _PER_VIEW + _EITHER if isinstance(config.get(key), list | tuple)}
    if len(set(lists.values())) > 1:
        raise ValueError(
            "views: the per-view lists give different numbers of views ("
            + ", ".join(f"{key} {n}" for key, n in lists.items())
            + ")"
        )
    n_views = next(iter(lists.values()), 2)
    specs: list[dict[str, Any]] = [{} for _ in range(n_views)]
    for key, value in config.items():
        for view, spec in enumerate(specs):
            if key in _RANGES:
                spec[key] = tuple(float(v) for v in value)
            else:
                spec[key] = float(value[view] if key in lists else value)
    return [ViewSpec(**spec) for spec in specs]


def blur_kernel_size(spec: ViewSpec, out_size: int) -> int:
    """``2 ceil(3 sigma_max) + 1`` with ``sigma_max = blur_sigma[1] * out_size / 224``, at least 3, and with the
    radius capped at ``out_size - 1`` (reflect padding needs it smaller than the image)."""
    radius = max(1, math.ceil(3 * spec.blur_sigma[1] * out_size / 224))
    return 2 * min(radius, max(out_size - 1, 0)) + 1
