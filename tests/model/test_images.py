"""model.data.images: decoding untrusted bytes to 8-bit RGB, refusing the rest, and the shared preprocessing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.core.errors import ImageTooLargeError, InvalidImageError, UnsupportedMediaError
from model.data.images import MAX_PIXELS, PreprocessSpec, decode_image, load_and_preprocess, preprocess, sniff
from model.learning.backbones import BACKBONES, IMAGENET_MEAN, IMAGENET_STD
from tests.utils.images import (
    animated_gif_bytes,
    blank_bilevel_png,
    encode,
    exif_jpeg_bytes,
    png_claiming_size,
    random_image,
    random_image_bytes,
    solid_image_bytes,
)

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
