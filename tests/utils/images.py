"""Small image factories for tests: encoded bytes in any format/mode, plus hostile inputs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tests.utils.paths import DATASET as DATASET_DIR

EXIF_ORIENTATION = 0x0112


def encode(img: Image.Image, fmt: str = "PNG", **save_kwargs: object) -> bytes:
    """Encode a PIL image to bytes in ``fmt``."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


def random_image(size: tuple[int, int] = (64, 48), mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Random noise picture of ``size`` (width, height) in a PIL ``mode``.

    Supported modes: RGB, L, P, RGBA, LA, CMYK, I;16 (16-bit grayscale, full 0..65535 range).
    """
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), mode="RGB")
    if mode == "RGB":
        return rgb
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    if mode in ("RGBA", "LA"):
        alpha = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), mode="L")
        img = rgb.convert(mode[:-1])
        img.putalpha(alpha)
        return img
    return rgb.convert(mode)


def random_image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), mode: str = "RGB", seed: int = 0,
                       **save_kwargs: object) -> bytes:
    """Random noise picture encoded as ``fmt`` (JPEG, PNG, WEBP, TIFF, BMP, GIF, ...)."""
    return encode(random_image(size, mode, seed), fmt, **save_kwargs)


def solid_image_bytes(colour: tuple[int, ...] | int, fmt: str = "PNG", size: tuple[int, int] = (64, 48),
                      mode: str = "RGB", **save_kwargs: object) -> bytes:
    """Single-colour picture encoded as ``fmt``."""
    return encode(Image.new(mode, size, colour), fmt, **save_kwargs)


def animated_gif_bytes(colours: list[tuple[int, int, int]], size: tuple[int, int] = (32, 24)) -> bytes:
    """Animated GIF with one solid frame per colour (in order)."""
    frames = [Image.new("RGB", size, c) for c in colours]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_jpeg_bytes(orientation: int, size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """JPEG whose EXIF Orientation tag is ``orientation`` (pixels stored as ``size``)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return encode(random_image(size, "RGB", seed), "JPEG", exif=exif.tobytes(), quality=95)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny, syntactically valid PNG whose header claims ``width`` x ``height`` RGB pixels.

    The pixel data is empty: only the header matters to a pixel-count check, and nothing big is allocated.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b""))
            + _png_chunk(b"IEND", b""))


def blank_bilevel_png(width: int, height: int) -> bytes:
    """A real, complete, all-black 1-bit PNG, compressed row by row (e.g. 8000x7000 is ~7 kB)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def dataset_images(label: str, n: int) -> list[Path]:
    """The first ``n`` photos (sorted by name) of ``label`` in the shared dandelion/grass dataset."""
    files = sorted((DATASET_DIR / label).glob("*.jpg"))[:n]
    assert len(files) == n, f"the shared data set must have {n} {label} photos in {DATASET_DIR}"  # fail, never skip
    return files


def gradient_png(width: int, height: int, *, bit_depth: int = 8, grey: bool = False) -> bytes:
    """A real, complete PNG of a horizontal ramp from 0 to full scale, written row by row (a "pixel bomb").

    ``bit_depth`` 8 or 16; ``grey`` for one channel (16-bit grey opens as mode I;16), else RGB. Every row after
    the first uses the PNG "Up" filter, so it is all zero bytes: 7000x7000 RGB compresses to about 150 kB, yet
    decodes to the full 7000x7000 buffer.
    """
    assert bit_depth in (8, 16)
    channels = 1 if grey else 3
    full = (1 << bit_depth) - 1
    ramp = np.round(np.linspace(0, full, width)).astype(">u2" if bit_depth == 16 else np.uint8)
    first = np.repeat(ramp, channels).tobytes()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0 if grey else 2, 0, 0, 0)
    compressor = zlib.compressobj(6)
    up_row = b"\x02" + b"\x00" * len(first)  # filter 2: each byte equals the one above
    idat = compressor.compress(b"\x00" + first) + b"".join(compressor.compress(up_row) for _ in range(height - 1))
    idat += compressor.flush()
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def photo_jpeg_bytes(size: tuple[int, int], index: int = 0, label: str = "dandelion", quality: int = 90) -> bytes:
    """A real photo of the shared data set upscaled (bicubic) to ``size`` (width, height) and encoded as JPEG."""
    path = dataset_images(label, index + 1)[index]
    with Image.open(path) as photo:
        big = photo.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    return encode(big, "JPEG", quality=quality)


def near_copy(data: bytes, *, crop: float = 0.10, scale: float = 0.6, quality: int = 70) -> bytes:
    """A re-encoded, resized and cropped copy of a photo: ``crop`` of each side's length cut off
    (half at each edge), scaled by ``scale``, saved as a JPEG of ``quality``."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    dx, dy = int(w * crop / 2), int(h * crop / 2)
    img = img.crop((dx, dy, w - dx, h - dy))
    img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.Resampling.BILINEAR)
    return encode(img, "JPEG", quality=quality)


TEXTURES = ("noise", "stripes", "checker", "blobs", "rings")


def texture_image_bytes(kind: str, seed: int = 0, size: tuple[int, int] = (192, 160)) -> bytes:
    """A generated texture (out-of-domain for a photo classifier) as JPEG: ``kind`` one of ``TEXTURES``."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    colours = rng.integers(0, 256, (2, 3)).astype(np.float64)
    if kind == "noise":
        arr = rng.integers(0, 256, (height, width, 3)).astype(np.float64)
    else:
        if kind == "stripes":
            angle, period = rng.uniform(0, np.pi), rng.uniform(6, 30)
            t = (np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period) + 1) / 2
        elif kind == "checker":
            cell = int(rng.integers(6, 32))
            t = ((xx // cell + yy // cell) % 2).astype(np.float64)
        elif kind == "blobs":
            coarse = rng.random((max(2, height // 24), max(2, width // 24)))
            t = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC),
                           dtype=np.float64) / 255
        elif kind == "rings":
            cx, cy, period = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, 25)
            t = (np.sin(2 * np.pi * np.hypot(xx - cx, yy - cy) / period) + 1) / 2
        else:
            raise ValueError(f"unknown texture {kind!r}")
        arr = colours[0] * (1 - t[..., None]) + colours[1] * t[..., None]
    return encode(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), "JPEG", quality=90)


def out_of_domain_images(n: int, seed: int = 0) -> list[bytes]:
    """``n`` generated textures, cycling through every kind of ``TEXTURES``."""
    return [texture_image_bytes(TEXTURES[i % len(TEXTURES)], seed=seed * 100_003 + i) for i in range(n)]


def recoloured(data: bytes, variant: int = 0) -> bytes:
    """A photo with its colours changed: inverted (0), channels rotated (1), or posterised to 2 bits (2)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if variant % 3 == 0:
        img = ImageOps.invert(img)
    elif variant % 3 == 1:
        r, g, b = img.split()
        img = Image.merge("RGB", (b, r, g))
    else:
        img = ImageOps.posterize(img, 2)
    return encode(img, "JPEG", quality=90)
