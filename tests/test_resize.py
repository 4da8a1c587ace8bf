import numpy as np
import pytest
from PIL import Image

from genssl.data.resize import fit_image


def _image(w: int, h: int) -> Image.Image:
    # A horizontal ramp in red, a vertical ramp in green: crops and scalings are visible in the values.
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8))


def test_center_crop_scales_the_shorter_side_and_crops_the_centre():
    out = fit_image(_image(200, 100), 50, "center_crop", "bilinear")
    assert out.shape == (50, 50, 3) and out.dtype == np.uint8
    # The 100 x 50 intermediate keeps columns 25..74: the red ramp covers the middle half only.
    assert 50 < out[:, 0, 0].mean() < 80 and 175 < out[:, -1, 0].mean() < 205
    # Vertically nothing is cropped: green spans (almost) the full range.
    assert out[0, :, 1].mean() < 10 and out[-1, :, 1].mean() > 245


def test_center_crop_of_a_same_size_image_is_the_identity():
    image = _image(32, 32)
    assert np.array_equal(fit_image(image, 32, "center_crop"), np.asarray(image))


def test_stretch_ignores_the_aspect_ratio():
    out = fit_image(_image(200, 100), 40, "stretch", "bilinear")
    assert out.shape == (40, 40, 3)
    assert out[:, 0, 0].mean() < 10 and out[:, -1, 0].mean() > 245


def test_shorter_side_keeps_the_aspect_ratio():
    assert fit_image(_image(200, 100), 50, "shorter_side").shape == (50, 100, 3)
    assert fit_image(_image(90, 300), 30, "shorter_side").shape == (100, 30, 3)


def test_none_keeps_the_pixels_and_grayscale_becomes_rgb():
    gray = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20, mode="L")
    out = fit_image(gray, 8, "none")
    assert out.shape == (3, 4, 3)
    assert np.array_equal(out[..., 0], np.asarray(gray)) and np.array_equal(out[..., 0], out[..., 2])


def test_resizing_is_deterministic():
    image = _image(123, 77)
    assert np.array_equal(fit_image(image, 31, "center_crop"), fit_image(image, 31, "center_crop"))


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown resize policy 'fill'"):
        fit_image(_image(10, 10), 8, "fill")
