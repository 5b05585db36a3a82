"""Image decoding and preprocessing shared by training, evaluation and serving (no torch here).

``decode_image`` turns untrusted bytes into an RGB picture or raises a clear error;
``preprocess`` turns that picture into the float32 CHW array every backbone receives.

Pixel bombs (a small file that decodes to a huge buffer) are bounded three ways: the pixel count read from
the header is checked against ``max_pixels`` before anything is decoded; when the caller says how small the
picture may get (``min_side``), JPEGs are decoded at reduced size and other formats are box-reduced early;
and at most ``MAX_CONCURRENT_DECODES`` decodes of more than ``INLINE_DECODE_PIXELS`` pixels run at once, on as
many dedicated threads (smaller pictures decode on the caller's thread). Conversions never
widen the pixels (no float64 copies of the whole picture): modes other than RGB and L (16-bit, palette,
alpha, ...) are converted to 8-bit RGB a strip of rows at a time.
"""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from model.core.errors import ImageTooLargeError, InvalidImageError, UnsupportedMediaError

MAX_PIXELS = 50_000_000  # absolute ceiling, also enforced by Pillow itself (Image.MAX_IMAGE_PIXELS)
DEFAULT_MAX_PIXELS = 24_000_000  # the default limit for uploads (settings.max_image_megapixels)
MAX_CONCURRENT_DECODES = 4
# Pictures of at most this many pixels (by their header) decode on the calling thread, outside the slots: their
# buffers (under 1 MB in RGB) are too small for the arena growth the decode threads guard against, while the
# hand-off to a decode thread (a wake-up and two GIL acquisitions, ~0.3 ms of a 20 ms prediction alone) left a
# core idle under load: a prediction thread waits out every hand-off.
INLINE_DECODE_PIXELS = 1 << 18
ALLOWED_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "MPO": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "TIFF": ("tiff", "image/tiff"),
    "BMP": ("bmp", "image/bmp"),
    "GIF": ("gif", "image/gif"),
}
# Compared with the lower-cased start of the file, so every signature must be lower case.
_REFUSED_SIGNATURES = (
    (b"%pdf", "PDF documents"),
    (b"<?xml", "XML/SVG documents"),
    (b"<svg", "SVG images"),
    (b"<!doctype", "HTML documents"),
    (b"<html", "HTML documents"),
)

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_T = TypeVar("_T")

HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_DRAFT_FORMATS = ("JPEG", "MPO")
_STRIP_PIXELS = 1 << 18  # conversions of modes other than RGB and L work on strips of about this many pixels
# Draft and box-reduce keep the shorter side >= this many times min_side, so the bicubic resize that follows
# still sees detail near its own scale: on data set photos upscaled to 2-24 MP (JPEG, PNG, 16-bit PNG), the
# preprocessed arrays differ from those of the full-size decode by < 0.09 (max) / < 0.008 (mean) on the
# normalised scale, against up to 0.37 / 0.027 when JPEGs are drafted down to min_side itself.
_REDUCE_MARGIN = 2

# At most MAX_CONCURRENT_DECODES pixel decodes run at once (the semaphore), on as many dedicated threads (the
# pool). The semaphore bounds how many full-size buffers exist at a time; the fixed threads bound what the
# allocator keeps afterwards: glibc gives each thread its own malloc arena and keeps memory freed there, so
# decodes spread over many request threads grow RSS by a full buffer per thread even one at a time (measured:
# 8 threads, 24 MP 16-bit PNGs, one slot: +420 MB when each thread decoded itself, +72 MB on the pool).
_decode_slots = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
_decode_pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_DECODES, thread_name_prefix="sprout-decode")
_decode_count = MAX_CONCURRENT_DECODES


def set_max_concurrent_decodes(count: int) -> None:
    """Change the process-wide bound on simultaneous pixel decodes (decodes already running finish as they are).

    The replaced pool is not shut down (a caller may be about to submit to it); its idle threads end once it is
    garbage-collected.
    """
    global _decode_slots, _decode_pool, _decode_count
    if count < 1:
        raise ValueError("at least one concurrent decode is needed")
    _decode_count = count
    _decode_pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="sprout-decode")
    _decode_slots = threading.BoundedSemaphore(count)


def _reset_decoders_after_fork() -> None:
    """A forked child has none of the parent's threads: slots they held and the pool's workers are gone."""
    global _decode_slots, _decode_pool
    _decode_slots = threading.BoundedSemaphore(_decode_count)
    _decode_pool = ThreadPoolExecutor(max_workers=_decode_count, thread_name_prefix="sprout-decode")


os.register_at_fork(after_in_child=_reset_decoders_after_fork)


def run_decode(fn: Callable[..., _T], *args: object) -> _T:
    """``fn(*args)`` on a decode thread, once one of the decode slots is free (blocks until then)."""
    slots, pool = _decode_slots, _decode_pool  # one pair, even if they are replaced meanwhile
    slots.acquire()

    def holding_the_slot() -> _T:
        try:
            return fn(*args)
        finally:
            slots.release()  # by the worker: the slot stays taken while the pixels exist, whatever the caller does

    try:
        future = pool.submit(holding_the_slot)
    except BaseException:
        slots.release()
        raise
    return future.result()


def _pixel_limit(max_pixels: int) -> int:
    if max_pixels <= 0:
        raise ValueError("max_pixels must be positive")
    return min(int(max_pixels), MAX_PIXELS)


def _too_large(limit: int, size: tuple[int, int] | None = None) -> ImageTooLargeError:
    has = f"{size[0] * size[1]:,} pixels ({size[0]}x{size[1]}), over" if size else "too many pixels, over"
    return ImageTooLargeError(f"The image has {has} the limit of {limit:,} pixels ({limit / 1e6:g} megapixels).")


@dataclass(frozen=True)
class ImageInfo:
    """What Sprout records about an accepted image."""

    ext: str
    content_type: str
    width: int
    height: int


def sniff(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Check the bytes are an allowed image format of at most ``max_pixels`` pixels, without decoding pixels.

    ``max_pixels`` is capped at ``MAX_PIXELS``.
    """
    limit = _pixel_limit(max_pixels)
    if not data:
        raise InvalidImageError("The file is empty.")
    head = data[:512].lstrip().lower()
    for sig, what in _REFUSED_SIGNATURES:
        if head.startswith(sig) or (sig == b"<svg" and b"<svg" in head):
            raise UnsupportedMediaError(f"{what} are not accepted; send a JPEG, PNG, WebP, TIFF, BMP or GIF.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(limit) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError("The file is not an image Sprout can read.") from exc
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedMediaError(f"Image format {fmt or 'unknown'} is not accepted.")
    if width * height > limit:
        raise _too_large(limit, (width, height))
    ext, content_type = ALLOWED_FORMATS[fmt]
    return ImageInfo(ext=ext, content_type=content_type, width=width, height=height)


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> Image.Image:
    """Decode untrusted bytes to an RGB image: first frame, EXIF orientation applied.

    Images over ``max_pixels`` (capped at ``MAX_PIXELS``) are refused from their header, before any pixel is
    decoded. With ``min_side``, the result may be smaller than the image, but its shorter side stays at least
    ``2 * min_side`` (a JPEG is decoded at 1/2, 1/4 or 1/8 scale; another format much larger than that is
    box-reduced by an integer factor), for callers that shrink the picture to ``min_side`` afterwards anyway.
    """
    return _decode(data, max_pixels, min_side).image


@dataclass(frozen=True)
class _Decoded:
    """A decoded picture, possibly at reduced scale, and where the whole picture lies in it."""

    image: Image.Image
    size: tuple[int, int]  # the picture's full size (EXIF orientation applied)
    # The region of ``image`` the whole picture maps onto; at reduced scale an edge pixel may stand for only
    # part of a block, so this is not always (0, 0, *image.size). None: all of ``image``.
    box: tuple[float, float, float, float] | None


DecodedImage = _Decoded  # what ``decode_for`` returns


def _decode(data: bytes, max_pixels: int, min_side: int | None) -> _Decoded:
    limit = _pixel_limit(max_pixels)
    if min_side is not None and min_side < 1:
        raise ValueError("min_side must be positive")
    info = sniff(data, max_pixels=limit)
    if info.width * info.height <= INLINE_DECODE_PIXELS:
        return _decode_pixels(data, limit, min_side)
    return run_decode(_decode_pixels, data, limit, min_side)


def _decode_pixels(data: bytes, limit: int, min_side: int | None) -> _Decoded:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
            try:
                return _decode_opened(opened, limit, min_side)
            finally:
                opened.close()  # free the full-size pixels before this decode slot is given back
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large(limit) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImageError("The image is truncated or corrupt.") from exc


def _decode_opened(opened: Image.Image, limit: int, min_side: int | None) -> _Decoded:
    opened.seek(0)
    if opened.width * opened.height > limit:  # the first frame, in case it differs from the header
        raise _too_large(limit, opened.size)
    full_size = opened.size
    box: tuple[float, float, float, float] | None = None
    if min_side is not None and opened.format in _DRAFT_FORMATS:
        keep = _REDUCE_MARGIN * min_side  # the largest 1/2, 1/4 or 1/8 scale keeping both sides >= keep
        if min(opened.size) >= 2 * keep and (drafted := opened.draft("RGB", (keep, keep))):
            box = drafted[1]  # the whole picture in drafted pixels: (0, 0, width / scale, height / scale)
    opened.load()
    orientation = opened.getexif().get(ExifTags.Base.Orientation, 1)
    if box is not None:
        box = _transpose_box(box, opened.size, orientation)
    ImageOps.exif_transpose(opened, in_place=True)  # the same orientation, read the same way
    if orientation in (5, 6, 7, 8):
        full_size = (full_size[1], full_size[0])
    factor = _reduce_factor(opened.size, min_side)
    if factor > 1:
        x0, y0, x1, y1 = box or (0, 0, *opened.size)
        box = (x0 / factor, y0 / factor, x1 / factor, y1 / factor)
    return _Decoded(_to_rgb(opened, factor), full_size, box)


def _transpose_box(
    box: tuple[float, float, float, float], size: tuple[int, int], orientation: int
) -> tuple[float, float, float, float]:
    """Where ``box`` of an image of ``size`` lands once the image is transposed for EXIF ``orientation``."""
    width, height = size
    moves = {
        2: lambda x, y: (width - x, y),  # FLIP_LEFT_RIGHT
        3: lambda x, y: (width - x, height - y),  # ROTATE_180
        4: lambda x, y: (x, height - y),  # FLIP_TOP_BOTTOM
        5: lambda x, y: (y, x),  # TRANSPOSE
        6: lambda x, y: (height - y, x),  # ROTATE_270 (clockwise)
        7: lambda x, y: (height - y, width - x),  # TRANSVERSE
        8: lambda x, y: (y, width - x),  # ROTATE_90 (counter-clockwise)
    }
    move = moves.get(orientation)
    if move is None:
        return box
    (ax, ay), (bx, by) = move(box[0], box[1]), move(box[2], box[3])
    return (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def _reduce_factor(size: tuple[int, int], min_side: int | None) -> int:
    """Integer box-reduction factor that keeps the shorter side >= _REDUCE_MARGIN * min_side (1: none)."""
    if min_side is None:
        return 1
    factor = min(size) // (_REDUCE_MARGIN * min_side)
    return factor if factor >= 2 else 1


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (16-bit, palette, alpha, CMYK, grayscale) to 8-bit RGB (always a new image)."""
    if img.mode == "RGB":
        return img.copy()
    return _to_rgb(img)


def _to_rgb(img: Image.Image, factor: int = 1) -> Image.Image:
    """``to_rgb`` then ``reduce(factor)``, without a full-size intermediate for modes other than RGB and L.

    An RGB input with ``factor`` 1 is returned without copying its pixels (as a plain ``Image``).
    """
    if img.mode == "RGB":
        return img.reduce(factor) if factor > 1 else img._new(img.im)
    if img.mode == "L":
        return (img.reduce(factor) if factor > 1 else img).convert("RGB")
    full_scale = _full_scale(img)
    width, height = img.size
    rows = -(-max(1, _STRIP_PIXELS // width) // factor) * factor  # a multiple of factor: blocks never straddle
    if rows >= height and factor == 1:
        return _convert_to_rgb(img, full_scale)
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = _convert_to_rgb(img.crop((0, top, width, min(height, top + rows))), full_scale)
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return out


def _full_scale(img: Image.Image) -> float | None:
    """The value that maps to 255 for 16/32-bit modes (None for 8-bit modes)."""
    if img.mode not in HIGH_DEPTH_MODES:
        return None
    if img.mode.startswith("I;16"):
        return 65535.0
    extrema = img.getextrema()
    top = extrema[1] if isinstance(extrema[1], int | float) else 0
    return 65535.0 if top > 255 else 255.0


def _convert_to_rgb(img: Image.Image, full_scale: float | None) -> Image.Image:
    """The per-pixel conversion to 8-bit RGB; deep modes are scaled so ``full_scale`` maps to 255."""
    if full_scale is not None:
        pixels = np.asarray(img).astype(np.float32) * np.float32(255.0 / full_scale)
        np.nan_to_num(pixels, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(pixels, 0.0, 255.0, out=pixels)
        img = Image.fromarray(np.rint(pixels, out=pixels).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


@dataclass(frozen=True)
class PreprocessSpec:
    """How a backbone wants its input: resize the shorter side, centre-crop, normalise."""

    input_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PreprocessSpec:
        raw = json.loads(text)
        return cls(
            input_size=int(raw["input_size"]),
            resize=int(raw["resize"]),
            mean=tuple(float(x) for x in raw["mean"]),  # type: ignore[arg-type]
            std=tuple(float(x) for x in raw["std"]),  # type: ignore[arg-type]
            interpolation=str(raw.get("interpolation", "bicubic")),
        )


_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def preprocess(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """RGB image → normalised float32 array of shape (3, input_size, input_size)."""
    return _preprocess(img, spec, img.size, None)


def _preprocess(
    img: Image.Image, spec: PreprocessSpec, size: tuple[int, int], box: tuple[float, float, float, float] | None
) -> np.ndarray:
    """``preprocess`` of a picture of ``size`` that ``img`` holds, perhaps at reduced scale, in ``box``."""
    w, h = size
    scale = spec.resize / min(w, h)
    new_w, new_h = max(spec.input_size, round(w * scale)), max(spec.input_size, round(h * scale))
    img = img.resize((new_w, new_h), _RESAMPLE[spec.interpolation], box=box)
    left, top = (new_w - spec.input_size) // 2, (new_h - spec.input_size) // 2
    img = img.crop((left, top, left + spec.input_size, top + spec.input_size))
    pixels = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    normalised = (pixels - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)


def decode_for(data: bytes, spec: PreprocessSpec, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode untrusted bytes once, no larger than ``spec`` needs (``preprocess_decoded`` then makes the model
    input; ``.image`` serves anything else that needs the picture, e.g. its perceptual hash)."""
    return _decode(data, max_pixels, spec.resize)


def preprocess_decoded(decoded: DecodedImage, spec: PreprocessSpec) -> np.ndarray:
    """The model input of a ``decode_for`` result: the same array as ``load_and_preprocess`` gives."""
    return _preprocess(decoded.image, spec, decoded.size, decoded.box)


def load_and_preprocess(data: bytes, spec: PreprocessSpec, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes → preprocessed array; the single path used by training and serving.

    The picture is decoded no larger than needed (``decode_image`` with ``min_side=spec.resize``), and the
    resize then maps the whole picture exactly as it would from the full-size decode.
    """
    decoded = _decode(data, max_pixels, spec.resize)
    return _preprocess(decoded.image, spec, decoded.size, decoded.box)
