"""Image decoding and preprocessing shared by training, evaluation and serving (no torch here).

``decode_image`` turns untrusted bytes into an RGB picture or raises a clear error;
``preprocess`` turns that picture into the float32 CHW array every backbone receives.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from model.core.errors import ImageTooLargeError, InvalidImageError, UnsupportedMediaError

MAX_PIXELS = 50_000_000
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


@dataclass(frozen=True)
class ImageInfo:
    """What Sprout records about an accepted image."""

    ext: str
    content_type: str
    width: int
    height: int


def sniff(data: bytes) -> ImageInfo:
    """Check the bytes are an allowed image format without decoding pixels."""
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
        raise ImageTooLargeError(f"The image has too many pixels (limit {MAX_PIXELS:,}).") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError("The file is not an image Sprout can read.") from exc
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedMediaError(f"Image format {fmt or 'unknown'} is not accepted.")
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(f"The image has too many pixels (limit {MAX_PIXELS:,}).")
    ext, content_type = ALLOWED_FORMATS[fmt]
    return ImageInfo(ext=ext, content_type=content_type, width=width, height=height)


def decode_image(data: bytes) -> Image.Image:
    """Decode untrusted bytes to an RGB image: first frame, EXIF orientation applied."""
    sniff(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
            opened.seek(0)
            opened.load()
            return to_rgb(ImageOps.exif_transpose(opened) or opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"The image has too many pixels (limit {MAX_PIXELS:,}).") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImageError("The image is truncated or corrupt.") from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (16-bit, palette, alpha, CMYK, grayscale) to 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8), mode="L")
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
    w, h = img.size
    scale = spec.resize / min(w, h)
    new_w, new_h = max(spec.input_size, round(w * scale)), max(spec.input_size, round(h * scale))
    img = img.resize((new_w, new_h), _RESAMPLE[spec.interpolation])
    left, top = (new_w - spec.input_size) // 2, (new_h - spec.input_size) // 2
    img = img.crop((left, top, left + spec.input_size, top + spec.input_size))
    pixels = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    normalised = (pixels - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)


def load_and_preprocess(data: bytes, spec: PreprocessSpec) -> np.ndarray:
    """Bytes → preprocessed array; the single path used by training and serving."""
    return preprocess(decode_image(data), spec)
