"""model.data.images: decoding untrusted bytes to 8-bit RGB, refusing the rest, and the shared preprocessing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from model.core.errors import ImageTooLargeError, InvalidImageError, UnsupportedMediaError
from model.core.settings import Settings
from model.data.images import (
    DEFAULT_MAX_PIXELS,
    INLINE_DECODE_PIXELS,
    MAX_CONCURRENT_DECODES,
    MAX_PIXELS,
    PreprocessSpec,
    decode_image,
    load_and_preprocess,
    preprocess,
    set_max_concurrent_decodes,
    sniff,
    to_rgb,
)
from model.learning.backbones import BACKBONES, IMAGENET_MEAN, IMAGENET_STD
from tests.utils.images import (
    EXIF_ORIENTATION,
    animated_gif_bytes,
    blank_bilevel_png,
    dataset_images,
    encode,
    exif_jpeg_bytes,
    gradient_png,
    photo_jpeg_bytes,
    png_claiming_size,
    random_image,
    random_image_bytes,
    solid_image_bytes,
)
from tests.utils.paths import REPO_ROOT

SIZE = (64, 48)  # width, height: non-square so transposition shows


def _assert_rgb8(img: Image.Image, size: tuple[int, int] = SIZE) -> np.ndarray:
    assert img.mode == "RGB"
    assert img.size == size
    arr = np.asarray(img)
    assert arr.dtype == np.uint8 and arr.shape == (size[1], size[0], 3)
    return arr


# --- accepted formats ---------------------------------------------------------------------------------

FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "TIFF": ("tiff", "image/tiff"),
    "BMP": ("bmp", "image/bmp"),
    "GIF": ("gif", "image/gif"),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_decode_accepts_format(fmt: str) -> None:
    data = random_image_bytes(fmt, size=SIZE)
    _assert_rgb8(decode_image(data))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP"])
def test_decode_lossless_formats_keep_pixels(fmt: str) -> None:
    original = random_image(SIZE, seed=3)
    decoded = decode_image(encode(original, fmt))
    np.testing.assert_array_equal(_assert_rgb8(decoded), np.asarray(original))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_sniff_reports_ext_and_content_type(fmt: str) -> None:
    info = sniff(random_image_bytes(fmt, size=SIZE))
    assert (info.ext, info.content_type) == FORMATS[fmt]
    assert (info.width, info.height) == SIZE


def test_sniff_does_not_decode_pixels() -> None:
    """sniff only reads the header: a truncated JPEG still sniffs; decoding it fails."""
    data = random_image_bytes("JPEG", size=(256, 256))
    truncated = data[: len(data) // 2]
    assert sniff(truncated).ext == "jpg"
    with pytest.raises(InvalidImageError):
        decode_image(truncated)


def test_animated_gif_uses_first_frame() -> None:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    data = animated_gif_bytes(colours, size=SIZE)
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.n_frames == 3
    arr = _assert_rgb8(decode_image(data))
    np.testing.assert_array_equal(arr.reshape(-1, 3), np.tile(colours[0], (SIZE[0] * SIZE[1], 1)))


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    # Pure cyan+magenta+yellow+black ink levels of a red: C=0, M=255, Y=255, K=0.
    data = solid_image_bytes((0, 255, 255, 0), "JPEG", size=SIZE, mode="CMYK", quality=100)
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.mode == "CMYK"
    arr = _assert_rgb8(decode_image(data)).astype(int)
    assert np.abs(arr - np.array([255, 0, 0])).max() <= 3


def test_grayscale_is_replicated_to_three_channels() -> None:
    original = random_image(SIZE, mode="L", seed=1)
    arr = _assert_rgb8(decode_image(encode(original, "PNG")))
    for c in range(3):
        np.testing.assert_array_equal(arr[..., c], np.asarray(original))


def test_palette_image_uses_palette_colours() -> None:
    img = Image.new("P", SIZE, 0)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * (254 * 3))
    img.paste(1, (0, 0, SIZE[0] // 2, SIZE[1]))  # left half: index 1
    arr = _assert_rgb8(decode_image(encode(img, "PNG")))
    assert tuple(arr[0, 0]) == (200, 100, 50)
    assert tuple(arr[-1, -1]) == (10, 20, 30)


def test_palette_transparency_is_white() -> None:
    img = Image.new("P", SIZE, 0)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * (254 * 3))
    img.paste(1, (0, 0, SIZE[0] // 2, SIZE[1]))
    arr = _assert_rgb8(decode_image(encode(img, "PNG", transparency=0)))
    assert tuple(arr[0, 0]) == (200, 100, 50)
    assert tuple(arr[-1, -1]) == (255, 255, 255)


def test_rgba_is_composited_on_white() -> None:
    img = Image.new("RGBA", SIZE, (255, 0, 0, 0))  # fully transparent red
    img.paste((0, 0, 255, 255), (0, 0, 10, 10))  # opaque blue corner
    img.paste((0, 0, 0, 128), (SIZE[0] - 10, SIZE[1] - 10, SIZE[0], SIZE[1]))  # half-transparent black corner
    arr = _assert_rgb8(decode_image(encode(img, "PNG"))).astype(int)
    assert tuple(arr[SIZE[1] // 2, SIZE[0] // 2]) == (255, 255, 255)
    assert tuple(arr[0, 0]) == (0, 0, 255)
    assert np.abs(arr[-1, -1] - 127).max() <= 1


def test_random_rgba_matches_alpha_blend() -> None:
    original = random_image(SIZE, mode="RGBA", seed=2)
    arr = _assert_rgb8(decode_image(encode(original, "PNG"))).astype(np.float64)
    rgba = np.asarray(original).astype(np.float64)
    alpha = rgba[..., 3:] / 255.0
    expected = rgba[..., :3] * alpha + 255.0 * (1 - alpha)
    assert np.abs(arr - expected).max() <= 1.0


def test_16_bit_png_is_scaled_to_8_bit() -> None:
    original = random_image(SIZE, mode="I;16", seed=4)
    data = encode(original, "PNG")
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.mode == "I;16"
    arr = _assert_rgb8(decode_image(data)).astype(int)
    expected = np.asarray(original).astype(np.float64) / 65535.0 * 255.0
    assert np.abs(arr[..., 0] - expected).max() <= 1.0
    np.testing.assert_array_equal(arr[..., 0], arr[..., 1])
    np.testing.assert_array_equal(arr[..., 0], arr[..., 2])
    assert arr.max() >= 250  # full range used, not clipped to white or crushed to black
    assert arr.min() <= 5


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied(orientation: int) -> None:
    data = exif_jpeg_bytes(orientation, size=SIZE)
    assert sniff(data).width == SIZE[0]  # stored as landscape
    img = decode_image(data)
    assert img.mode == "RGB"
    assert img.size == (SIZE[1], SIZE[0])  # shown as portrait


def test_exif_orientation_rotates_the_pixels() -> None:
    """Orientation 6 means "rotate 90° clockwise to display": the stored top-left corner ends top-right."""
    img = Image.new("RGB", SIZE, (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 16, 16))  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6
    arr = np.asarray(decode_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))).astype(int)
    assert arr.shape == (SIZE[0], SIZE[1], 3)
    assert np.abs(arr[2, -3] - [255, 0, 0]).max() <= 20
    assert np.abs(arr[2, 2] - [255, 255, 255]).max() <= 20


# --- refused inputs -----------------------------------------------------------------------------------


def test_empty_bytes_are_invalid() -> None:
    with pytest.raises(InvalidImageError):
        decode_image(b"")
    with pytest.raises(InvalidImageError):
        sniff(b"")


def test_truncated_jpeg_is_invalid() -> None:
    data = random_image_bytes("JPEG", size=(128, 96))
    for cut in (len(data) // 2, 300, 20):
        with pytest.raises(InvalidImageError):
            decode_image(data[:cut])


def test_random_bytes_are_invalid() -> None:
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(InvalidImageError):
        decode_image(data)


SVG = b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
BARE_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
HTML = b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><img src=x></body></html>"
BARE_HTML = b"  \n<html><body>not an image</body></html>"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.mark.parametrize("data", [SVG, BARE_SVG, HTML, BARE_HTML, PDF],
                         ids=["svg", "bare-svg", "html", "bare-html", "pdf"])
def test_documents_are_unsupported_media(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaError):
        sniff(data)
    with pytest.raises(UnsupportedMediaError):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["PPM", "ICO", "TGA"])
def test_other_pillow_formats_are_unsupported_media(fmt: str) -> None:
    with pytest.raises(UnsupportedMediaError):
        decode_image(random_image_bytes(fmt, size=(32, 32)))


def test_decompression_bomb_header_is_too_large() -> None:
    """A ~60-byte PNG claiming 100000x100000 pixels is refused from its header, before any allocation."""
    data = png_claiming_size(100_000, 100_000)
    assert len(data) < 100
    with pytest.raises(ImageTooLargeError):
        sniff(data)
    with pytest.raises(ImageTooLargeError):
        decode_image(data)


def test_real_png_just_over_the_pixel_limit_is_too_large() -> None:
    """A complete, valid 8000x7000 PNG (56 Mpx > 50 Mpx) of a few kB: Pillow only warns here; Sprout refuses."""
    width, height = 8000, 7000
    assert MAX_PIXELS < width * height < 2 * MAX_PIXELS
    data = blank_bilevel_png(width, height)
    assert len(data) < 50_000
    with pytest.raises(ImageTooLargeError):
        sniff(data)
    with pytest.raises(ImageTooLargeError):
        decode_image(data)


# --- preprocessing ------------------------------------------------------------------------------------

IMAGENET_SPEC = PreprocessSpec(input_size=224, resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD)
PLAIN_SPEC = PreprocessSpec(input_size=32, resize=40, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_preprocess_shape_and_dtype(name: str) -> None:
    spec = BACKBONES[name].spec
    out = preprocess(random_image((300, 200)), spec)
    assert out.dtype == np.float32
    assert out.shape == (3, spec.input_size, spec.input_size)
    assert out.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("size", [(300, 200), (37, 500), (224, 224), (100, 100)])
@pytest.mark.parametrize("colour", [(10, 128, 250), (0, 0, 0), (255, 255, 255)])
def test_preprocess_constant_colour_normalisation(colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    out = preprocess(Image.new("RGB", size, colour), IMAGENET_SPEC)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    expected = (np.asarray(colour, dtype=np.float32) / np.float32(255.0) - mean) / std
    np.testing.assert_allclose(out, np.broadcast_to(expected[:, None, None], out.shape), rtol=0, atol=1e-6)


def test_preprocess_half_normalisation_maps_to_minus_one_one() -> None:
    spec = BACKBONES["efficientnet_lite0"].spec
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.5, 0.5, 0.5)
    black = preprocess(Image.new("RGB", (50, 60), (0, 0, 0)), spec)
    white = preprocess(Image.new("RGB", (50, 60), (255, 255, 255)), spec)
    np.testing.assert_allclose(black, -1.0, atol=1e-6)
    np.testing.assert_allclose(white, 1.0, atol=1e-6)


def _three_bands(size: tuple[int, int], horizontal: bool) -> Image.Image:
    """Red | green | blue thirds, side by side (``horizontal``) or stacked."""
    img = Image.new("RGB", size)
    w, h = size
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        box = (i * w // 3, 0, (i + 1) * w // 3, h) if horizontal else (0, i * h // 3, w, (i + 1) * h // 3)
        img.paste(colour, box)
    return img


@pytest.mark.parametrize("horizontal", [True, False], ids=["wide", "tall"])
def test_preprocess_centre_crops_non_square(horizontal: bool) -> None:
    size = (240, 80) if horizontal else (80, 240)
    out = preprocess(_three_bands(size, horizontal), PLAIN_SPEC)
    assert out.shape == (3, 32, 32)
    # Shorter side 80 → 40 (resize=40), longer 240 → 120; the central 32x32 lies inside the green band.
    green = np.broadcast_to(np.array([0.0, 1.0, 0.0], dtype=np.float32)[:, None, None], out.shape)
    np.testing.assert_allclose(out, green, atol=2 / 255)


def test_preprocess_resizes_shorter_side_then_crops() -> None:
    """The crop covers input_size/resize of the shorter side: a border outside it never shows up."""
    img = Image.new("RGB", (400, 400), (0, 0, 0))
    img.paste((255, 255, 255), (10, 10, 390, 390))  # black 10 px border; the crop keeps the central 350 px
    out = preprocess(img, PreprocessSpec(input_size=224, resize=256, mean=(0, 0, 0), std=(1, 1, 1)))
    np.testing.assert_allclose(out, 1.0, atol=1 / 255)


def test_load_and_preprocess_is_decode_then_preprocess() -> None:
    data = random_image_bytes("JPEG", size=(90, 70), seed=5)
    spec = BACKBONES["efficientnet_lite0"].spec
    np.testing.assert_array_equal(load_and_preprocess(data, spec), preprocess(decode_image(data), spec))


@pytest.mark.parametrize("spec", [*(info.spec for info in BACKBONES.values()), PLAIN_SPEC,
                                  PreprocessSpec(10, 12, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), "bilinear")])
def test_preprocess_spec_json_round_trip(spec: PreprocessSpec) -> None:
    text = spec.to_json()
    back = PreprocessSpec.from_json(text)
    assert back == spec
    assert isinstance(back.mean, tuple) and isinstance(back.std, tuple)
    assert back.to_json() == text


# --- pixel bombs: the upload pixel limit ----------------------------------------------------------------

BOMB_SIDE = 7000  # 49 Mpx: under the absolute MAX_PIXELS, over the 24 Mpx upload default


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    """A real, complete 7000x7000 RGB PNG of about 160 kB (it used to cost +530 MB and a second to decode)."""
    return gradient_png(BOMB_SIDE, BOMB_SIDE)


@pytest.fixture(scope="module")
def bomb_png16() -> bytes:
    """The same as 16-bit grey (it used to cost +1.3 GB: float64 copies of the whole picture)."""
    return gradient_png(BOMB_SIDE, BOMB_SIDE, bit_depth=16, grey=True)


def _refuse_to_decode(*_: object) -> None:
    raise AssertionError("pixels were decoded")


@pytest.mark.parametrize("bits", [8, 16])
def test_pixel_bomb_is_refused_under_the_default_limit(
    bits: int, bomb_png: bytes, bomb_png16: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bomb_png if bits == 8 else bomb_png16
    assert len(data) < 200_000
    assert DEFAULT_MAX_PIXELS == 24_000_000 < BOMB_SIDE**2 <= MAX_PIXELS
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", _refuse_to_decode)  # refused from the header alone
    for call in (sniff, decode_image, lambda d: load_and_preprocess(d, IMAGENET_SPEC)):
        with pytest.raises(ImageTooLargeError, match=r"49,000,000 pixels \(7000x7000\).*limit of 24,000,000 pixels"):
            call(data)


def test_pixel_bomb_is_accepted_with_a_larger_limit(bomb_png: bytes, bomb_png16: bytes) -> None:
    outputs = []
    for data in (bomb_png, bomb_png16):
        info = sniff(data, max_pixels=50_000_000)
        assert (info.width, info.height) == (BOMB_SIDE, BOMB_SIDE)
        out = load_and_preprocess(data, PLAIN_SPEC, max_pixels=50_000_000)
        assert out.shape == (3, 32, 32) and out.dtype == np.float32
        # A horizontal ramp 0 -> full scale: every row alike, rising left to right, grey, about 0.5 in the middle.
        np.testing.assert_allclose(out, np.broadcast_to(out[:1, :1, :], out.shape), atol=1e-6)
        assert np.all(np.diff(out[0, 0]) > 0)
        assert abs(float(out.mean()) - 0.5) < 0.02
        outputs.append(out)
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1.5 / 255)  # 8-bit and 16-bit ramps agree


def test_max_pixels_lowers_the_limit_and_is_capped_at_max_pixels() -> None:
    data = random_image_bytes("PNG", size=(200, 100))
    assert sniff(data, max_pixels=20_000).width == 200
    with pytest.raises(ImageTooLargeError, match="limit of 19,999 pixels"):
        sniff(data, max_pixels=19_999)
    with pytest.raises(ImageTooLargeError, match="limit of 19,999 pixels"):
        decode_image(data, max_pixels=19_999)
    with pytest.raises(ImageTooLargeError, match="limit of 19,999 pixels"):
        load_and_preprocess(data, PLAIN_SPEC, max_pixels=19_999)
    huge = blank_bilevel_png(8000, 7000)  # 56 Mpx: over MAX_PIXELS, whatever max_pixels says
    with pytest.raises(ImageTooLargeError, match=f"limit of {MAX_PIXELS:,} pixels"):
        sniff(huge, max_pixels=10**9)
    with pytest.raises(ImageTooLargeError):
        decode_image(huge, max_pixels=10**9)


def test_the_setting_gives_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPROUT_MAX_IMAGE_MEGAPIXELS", raising=False)
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert default.max_image_megapixels == 24 and default.max_image_pixels == DEFAULT_MAX_PIXELS
    monkeypatch.setenv("SPROUT_MAX_IMAGE_MEGAPIXELS", "12.5")
    assert Settings(_env_file=None).max_image_pixels == 12_500_000  # type: ignore[call-arg]


# --- pixel bombs: no float64 copies, conversions by strips --------------------------------------------------


def test_16_bit_ramp_maps_full_scale_to_255() -> None:
    """A 16-bit grey ramp 0..65535, large enough to be converted in several strips: v -> round(v * 255 / 65535)."""
    width, height = 4000, 300
    data = gradient_png(width, height, bit_depth=16, grey=True)
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.mode == "I;16"
        ramp = np.asarray(probe)[0].astype(np.float64)
    arr = _assert_rgb8(decode_image(data), (width, height)).astype(int)
    np.testing.assert_array_equal(arr, np.broadcast_to(arr[:1, :, :1], arr.shape))  # grey, every row alike
    np.testing.assert_array_equal(arr[0, :, 0], np.round(ramp * 255 / 65535).astype(int))
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255
    assert len(np.unique(arr[0, :, 0])) == 256  # every level used: nothing crushed or clipped


def _large_random_image(size: tuple[int, int], mode: str, seed: int) -> Image.Image:
    """random_image, but P (random indices into a random palette, index 3 transparent) and 1 made directly."""
    if mode == "P":
        rng = np.random.default_rng(seed)
        img = Image.fromarray(rng.integers(0, 64, (size[1], size[0]), dtype=np.uint8)).convert("P")
        img.putpalette(rng.integers(0, 256, 64 * 3, dtype=np.uint8).tobytes())
        img.info["transparency"] = 3
        return img
    if mode == "1":
        return random_image(size, mode="L", seed=seed).convert("1")
    return random_image(size, mode=mode, seed=seed)


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "I;16", "1", "CMYK"])
def test_conversion_by_strips_matches_pixel_by_pixel(mode: str) -> None:
    """to_rgb of a picture converted in strips equals the conversion of small pieces of it (no seams)."""
    img = _large_random_image((1500, 700), mode, seed=6)
    whole = np.asarray(to_rgb(img))
    for box in [(0, 150, 1500, 200), (0, 340, 700, 360), (1400, 0, 1500, 700), (3, 520, 11, 700)]:
        piece = np.asarray(to_rgb(img.crop(box)))
        np.testing.assert_array_equal(whole[box[1]:box[3], box[0]:box[2]], piece)


# --- pixel bombs: decoding no larger than the model needs -------------------------------------------------


@pytest.fixture(scope="module")
def photo_12mp() -> bytes:
    return photo_jpeg_bytes((4000, 3000))


def test_large_jpeg_is_drafted_at_reduced_scale(photo_12mp: bytes) -> None:
    assert (sniff(photo_12mp).width, sniff(photo_12mp).height) == (4000, 3000)
    assert decode_image(photo_12mp).size == (4000, 3000)
    # 1/4 scale: the largest that keeps the shorter side >= 2 x 256 (1/8 would give 375).
    assert decode_image(photo_12mp, min_side=256).size == (1000, 750)
    assert decode_image(photo_12mp, min_side=100).size == (500, 375)  # 1/8, the most a JPEG allows
    assert decode_image(photo_12mp, min_side=2000).size == (4000, 3000)  # no room: full size
    with pytest.raises(ValueError):
        decode_image(photo_12mp, min_side=0)


def _assert_close_to_full_decode(data: bytes, spec: PreprocessSpec) -> None:
    """load_and_preprocess (reduced decode) against preprocess of the full-size decode.

    Measured on 8 photos of the data set upscaled to 2-24 Mpx, JPEG/PNG/16-bit PNG, both normalisations, all
    EXIF orientations: at most 0.087 (max) and 0.0078 (mean abs) on the normalised scale.
    """
    full = preprocess(decode_image(data), spec)
    fast = load_and_preprocess(data, spec)
    assert fast.shape == full.shape and fast.dtype == np.float32
    diff = np.abs(fast - full)
    assert diff.max() < 0.1
    assert diff.mean() < 0.01


@pytest.mark.parametrize("name", ["efficientnet_lite0", "dinov2-small"])
@pytest.mark.parametrize("label", ["dandelion", "grass"])
@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (2047, 1535)], ids=["landscape", "portrait", "odd"])
def test_drafted_jpeg_preprocesses_like_the_full_decode(name: str, label: str, size: tuple[int, int]) -> None:
    data = photo_jpeg_bytes(size, label=label)
    assert min(decode_image(data, min_side=BACKBONES[name].spec.resize).size) < min(size)  # draft is used
    _assert_close_to_full_decode(data, BACKBONES[name].spec)


@pytest.fixture(scope="module")
def odd_photo() -> Image.Image:
    """A photo upscaled to a size 1/2 scale does not divide: the drafted edge pixels stand for half a pixel."""
    with Image.open(dataset_images("grass", 1)[0]) as photo:
        return photo.convert("RGB").resize((2047, 1535), Image.Resampling.BICUBIC)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_drafted_jpeg_with_exif_orientation_preprocesses_like_the_full_decode(
    orientation: int, odd_photo: Image.Image
) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    data = encode(odd_photo, "JPEG", quality=92, exif=exif.tobytes())
    spec = BACKBONES["dinov2-small"].spec
    rotated = orientation in (5, 6, 7, 8)
    assert decode_image(data).size == ((1535, 2047) if rotated else (2047, 1535))
    assert decode_image(data, min_side=spec.resize).size == ((768, 1024) if rotated else (1024, 768))
    _assert_close_to_full_decode(data, spec)


@pytest.mark.parametrize("bits", [8, 16])
def test_large_png_is_box_reduced_and_preprocesses_like_the_full_decode(bits: int) -> None:
    with Image.open(dataset_images("dandelion", 1)[0]) as photo:
        big = photo.convert("RGB").resize((2600, 1800), Image.Resampling.BICUBIC)
    img = big if bits == 8 else Image.fromarray(np.asarray(big.convert("L")).astype(np.uint16) * 257)
    data = encode(img, "PNG", compress_level=1)
    spec = BACKBONES["dinov2-small"].spec
    assert decode_image(data, min_side=spec.resize).size == (867, 600)  # reduce(3): shorter side >= 2 x 256
    _assert_close_to_full_decode(data, spec)


@pytest.mark.parametrize("mode", ["P", "RGBA", "LA", "I;16", "1"])
def test_reduced_decode_is_the_full_decode_reduced(mode: str) -> None:
    """Converting and reducing strip by strip gives exactly what reducing the converted picture gives."""
    img = _large_random_image((1500, 1300), mode, seed=7)
    data = encode(img, "PNG", **({"transparency": 3} if mode == "P" else {}))
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.mode == mode
    reduced = decode_image(data, min_side=100)  # 1300 // (2 x 100) = 6
    assert reduced.mode == "RGB" and reduced.size == (250, 217)
    np.testing.assert_array_equal(np.asarray(reduced), np.asarray(decode_image(data).reduce(6)))


# --- pixel bombs: bounded concurrent decodes -------------------------------------------------------------


def test_concurrent_decodes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    active, peak, threads = 0, 0, set()
    lock = threading.Lock()
    real_load = PngImagePlugin.PngImageFile.load

    def counting_load(self: PngImagePlugin.PngImageFile) -> object:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            threads.add(threading.current_thread().name)
        try:
            time.sleep(0.02)
            return real_load(self)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counting_load)
    data = random_image_bytes("PNG", size=(640, 480))  # over INLINE_DECODE_PIXELS
    set_max_concurrent_decodes(2)
    try:
        with ThreadPoolExecutor(max_workers=8) as callers:
            sizes = list(callers.map(lambda _: decode_image(data).size, range(16)))
    finally:
        set_max_concurrent_decodes(MAX_CONCURRENT_DECODES)
    assert sizes == [(640, 480)] * 16
    assert peak <= 2  # the bound (a loaded machine may run them one at a time)
    assert all(name.startswith("sprout-decode") for name in threads)  # on the decode threads, not the callers'
    with pytest.raises(ValueError):
        set_max_concurrent_decodes(0)


def test_small_pictures_decode_on_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real_load = PngImagePlugin.PngImageFile.load

    def recording_load(self: PngImagePlugin.PngImageFile) -> object:
        threads.append(threading.current_thread().name)
        return real_load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", recording_load)
    side = int(INLINE_DECODE_PIXELS**0.5)
    assert decode_image(random_image_bytes("PNG", size=(side, side))).size == (side, side)
    assert set(threads) == {threading.current_thread().name}  # no hand-off for a small picture
    threads.clear()
    assert decode_image(random_image_bytes("PNG", size=(side + 1, side))).size == (side + 1, side)
    assert threads and all(name.startswith("sprout-decode") for name in threads)  # one column more: the pool


_MEMORY_SCRIPT = r"""
import io, json, sys, threading
from pathlib import Path
from PIL import Image
from model.data.images import PreprocessSpec, load_and_preprocess

def status_kb(field):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])

spec = PreprocessSpec(input_size=224, resize=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
png16, jpeg = (Path(p).read_bytes() for p in sys.argv[1:3])
for mode, fmt in (("I;16", "PNG"), ("RGB", "JPEG")):  # warm both code paths up on small pictures
    buf = io.BytesIO()
    Image.new(mode, (600, 600)).save(buf, fmt)
    load_and_preprocess(buf.getvalue(), spec)
before = status_kb("VmRSS")
start, shapes, errors = threading.Barrier(8), [], []

def work():
    try:
        start.wait()
        for data in (png16, jpeg):  # all 8 threads start with the 16-bit PNG
            shapes.append(load_and_preprocess(data, spec).shape)
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
# VmHWM only: ru_maxrss keeps the parent's RSS at fork across exec (a big pytest process would count here)
peak = status_kb("VmHWM")
print(json.dumps({"growth_mb": (peak - before) / 1024, "shapes": sorted(set(map(str, shapes))), "n": len(shapes),
                  "errors": errors}))
"""


def test_concurrent_worst_case_decodes_stay_under_300_mb(tmp_path: Path) -> None:
    """8 threads decoding 24 Mpx 16-bit PNGs and 24 Mpx JPEGs at once: peak RSS growth <= 300 MB.

    Measured on this change: about +230 MB (4 decodes of 48 MB at a time, on 4 decode threads); before it,
    +4 GB (every thread at once, float64 copies of each 16-bit picture).
    """
    width, height = 5999, 4000
    assert 23_900_000 < width * height <= DEFAULT_MAX_PIXELS
    png16, jpeg = tmp_path / "bomb16.png", tmp_path / "photo.jpg"
    png16.write_bytes(gradient_png(width, height, bit_depth=16, grey=True))
    jpeg.write_bytes(photo_jpeg_bytes((width, height)))
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(png16), str(jpeg)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == [] and report["n"] == 16 and report["shapes"] == ["(3, 224, 224)"]
    assert report["growth_mb"] <= 300, report
