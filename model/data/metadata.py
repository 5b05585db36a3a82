"""Strip metadata (EXIF, GPS, XMP, comments, thumbnails, trailing bytes) from an accepted image before it is stored.

JPEG (and MPO) is rewritten losslessly at the marker-segment level: the coding segments, the JFIF header
(without its thumbnail), the ICC profile and the Adobe colour-transform segment are kept, the entropy-coded
data is copied byte for byte up to the EOI that ends the first picture, and all else is dropped (APP1 EXIF/XMP,
MPF and the further MPO frames, APP3-APP15, COM, trailing bytes). An orientation other than 1 is kept as a
minimal EXIF segment, so the picture still decodes the right way up. Every other format (PNG included) is
re-encoded as PNG: first frame, orientation applied, no text/EXIF chunks; the ICC profile is kept when the mode
is. In both cases ``decode_image`` of the result equals ``decode_image`` of the original.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from model.core.errors import InvalidImageError
from model.data.images import HIGH_DEPTH_MODES, ImageInfo, run_decode, to_rgb

log = logging.getLogger(__name__)

_JPEG_TYPES = ("image/jpeg",)
# Modes a PNG holds as they are; "PA" and the rest are converted the way decode_image converts them.
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B")
_ALPHA_MODES = ("PA",)

_SOI, _EOI, _SOS, _TEM = 0xD8, 0xD9, 0xDA, 0x01
_APP0, _APP1, _APP2, _APP14, _APP15, _COM = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF, 0xFE
# SOF0-3, 5-7, 9-11, 13-15, DHT, DAC, DQT, DNL, DRI, DHP, EXP: needed to decode, kept as they are.
_CODING = frozenset({*range(0xC0, 0xC8), *range(0xC9, 0xD0), 0xDB, 0xDC, 0xDD, 0xDE, 0xDF})
_RST = range(0xD0, 0xD8)
_JFIF_HEAD = 14  # "JFIF\0", version (2), units (1), densities (2 x 2), thumbnail size (2 x 1)
_ADOBE_HEAD = 12  # "Adobe", version (2), flags (2 x 2), transform (1)
_ICC = b"ICC_PROFILE\x00"


@dataclass(frozen=True)
class StrippedImage:
    """The bytes to store, and what describes them."""

    data: bytes
    ext: str
    content_type: str


class _NotPlainJpeg(Exception):
    """The JPEG has a structure the segment walker does not rewrite: it is re-encoded as PNG instead."""


def strip_metadata(data: bytes, info: ImageInfo) -> StrippedImage:
    """``data`` (already accepted by ``sniff`` as ``info``) without its metadata; see the module docstring."""
    if info.content_type in _JPEG_TYPES:
        try:
            return StrippedImage(_strip_jpeg(data), "jpg", "image/jpeg")
        except _NotPlainJpeg as exc:
            log.warning("JPEG not rewritten losslessly (%s): stored as PNG", exc)
    return StrippedImage(run_decode(_reencode_png, data), "png", "image/png")


def _strip_jpeg(data: bytes) -> bytes:
    orientation, size, mode = _jpeg_header(data)
    if orientation not in range(2, 9):
        orientation = 1  # none, or a value exif_transpose ignores
    parts = _jpeg_segments(data)
    if orientation != 1:
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = orientation
        after_jfif = 2 if bytes(parts[1][:2]) == b"\xff\xe0" else 1
        parts.insert(after_jfif, _segment(_APP1, exif.tobytes()))  # tobytes() starts with b"Exif\0\0"
    out = b"".join(parts)
    try:  # a cheap check of the construction: headers only, no pixels
        same = _jpeg_header(out) == (orientation, size, mode)
    except InvalidImageError as exc:
        raise _NotPlainJpeg("the rewritten file does not open") from exc
    if not same:
        raise _NotPlainJpeg("the rewritten header differs")
    return out


def _jpeg_header(data: bytes) -> tuple[int, tuple[int, int], str]:
    """(EXIF orientation, size, mode) as Pillow reads them, without decoding pixels."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
            return (orientation if isinstance(orientation, int) else 1), img.size, img.mode
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImageError("The file is not an image Sprout can read.") from exc


def _segment(marker: int, payload: bytes | memoryview) -> bytes:
    if len(payload) > 0xFFFD:
        raise _NotPlainJpeg("segment too long")
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + bytes(payload)


def _jpeg_segments(raw: bytes) -> list[bytes | memoryview]:
    """The kept pieces of the first picture in ``raw``, SOI to EOI, in order."""
    data = memoryview(raw)
    if raw[:2] != b"\xff\xd8":
        raise _NotPlainJpeg("no SOI")
    parts: list[bytes | memoryview] = [b"\xff\xd8"]
    seen: set[int] = set()  # APP0 JFIF / APP14 Adobe: only the first of each is kept
    pos, end, in_scan = 2, len(data), False
    while True:
        if in_scan:
            pos = _copy_scan(raw, pos, parts)
        if pos >= end or data[pos] != 0xFF:
            raise _NotPlainJpeg("bytes between segments" if pos < end else "no EOI")
        while pos < end and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= end:
            raise _NotPlainJpeg("no EOI")
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            parts.append(b"\xff\xd9")
            return parts  # whatever follows (trailing bytes, further MPO frames) is dropped
        if marker == _TEM:
            continue
        if marker in _RST or marker in (0x00, _SOI):
            raise _NotPlainJpeg(f"unexpected marker {marker:#04x}")
        if pos + 2 > end:
            raise _NotPlainJpeg("truncated segment")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > end:
            raise _NotPlainJpeg("truncated segment")
        payload = data[pos + 2 : pos + length]
        kept = _kept_segment(marker, payload, seen)
        if kept is not None:
            parts.append(kept)
        pos += length
        in_scan = marker == _SOS


def _kept_segment(marker: int, payload: memoryview, seen: set[int]) -> bytes | None:
    """The segment as it is stored (None: dropped)."""
    if marker in _CODING or marker == _SOS:
        return _segment(marker, payload)
    if marker == _APP0 and payload[:5] == b"JFIF\x00" and len(payload) >= _JFIF_HEAD and _APP0 not in seen:
        seen.add(_APP0)  # libjpeg reads the colour space from it; the thumbnail is dropped
        return _segment(_APP0, bytes(payload[: _JFIF_HEAD - 2]) + b"\x00\x00")
    if marker == _APP2 and payload[: len(_ICC)] == _ICC:
        return _segment(marker, payload)
    if marker == _APP14 and payload[:5] == b"Adobe" and len(payload) >= _ADOBE_HEAD and _APP14 not in seen:
        seen.add(_APP14)  # its transform flag says how the components are coded
        return _segment(_APP14, payload[:_ADOBE_HEAD])
    if _APP0 <= marker <= _APP15 or marker == _COM:
        return None
    raise _NotPlainJpeg(f"unknown marker {marker:#04x}")


def _copy_scan(raw: bytes, pos: int, parts: list[bytes | memoryview]) -> int:
    """Copy entropy-coded data from ``pos`` (stuffed FF00 and RSTn included); the position of the next marker."""
    start, end = pos, len(raw)
    while True:
        ff = raw.find(b"\xff", pos)
        if ff < 0:
            raise _NotPlainJpeg("no EOI")
        nxt = ff + 1
        while nxt < end and raw[nxt] == 0xFF:
            nxt += 1
        if nxt >= end:
            raise _NotPlainJpeg("no EOI")
        if raw[nxt] == 0x00 or raw[nxt] in _RST:  # a data byte FF, or a restart marker: still in the scan
            pos = nxt + 1
            continue
        parts.append(memoryview(raw)[start:ff])
        return ff


def _reencode_png(data: bytes) -> bytes:
    """First frame, orientation applied, as a PNG with no metadata but the ICC profile (on a decode thread)."""
    buf = io.BytesIO()
    try:  # sniff has bounded the pixel count already
        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)
            ImageOps.exif_transpose(img, in_place=True)
            out = _png_mode(img)
            # A profile describes the colour space of the mode it came with.
            icc = img.info.get("icc_profile") if out is img else None
            out.save(buf, format="PNG", icc_profile=icc)
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidImageError("The image is truncated or corrupt.") from exc
    return buf.getvalue()


def _png_mode(img: Image.Image) -> Image.Image:
    """``img`` itself when a PNG holds its mode, else converted as ``decode_image`` would convert it."""
    if img.mode in _PNG_MODES:
        return img
    if img.mode in _ALPHA_MODES:
        return img.convert("RGBA")
    if img.mode in HIGH_DEPTH_MODES:  # 32-bit and float: the 8-bit grey decode_image makes of them
        return to_rgb(img).convert("L")
    return img.convert("RGB")
