"""model.data.metadata: what is stored has no EXIF/GPS, XMP, comments or trailing bytes, and the same pixels."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from db.models import SampleSource
from model.core.settings import Settings
from model.data.images import decode_image, sniff
from model.data.metadata import StrippedImage, strip_metadata
from model.data.samples import add_sample, sha256_of
from model.data.storage import LocalStore
from model.runtime.services import Services
from tests.utils.images import animated_gif_bytes, dataset_images, encode, random_image
from tests.utils.services import migrated_services

TRAILER = b"TRAILING-SECRET" + bytes(range(256)) * 4  # 1 KB+ after the end of the image
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">secret-xmp-packet</x:xmpmeta>'
COMMENT = b"secret comment: shot at home"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
GPS_IFD = {
    ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.5),
    ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (13.0, 24.0, 1.5),
}


def private_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.Base.Model] = "Spy 3000"
    exif[ExifTags.IFD.GPSInfo] = GPS_IFD
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    return exif


def photo(index: int = 0) -> Image.Image:
    with Image.open(dataset_images("dandelion", index + 1)[index]) as img:
        return img.convert("RGB")


def strip(data: bytes) -> StrippedImage:
    return strip_metadata(data, sniff(data))


def lossless_jpeg(data: bytes) -> bytes:
    """The stripped bytes, which must be a JPEG rewritten at the segment level (not the PNG fallback)."""
    out = strip(data)
    assert (out.ext, out.content_type) == ("jpg", "image/jpeg")
    return out.data


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(opened(data).convert("RGB"))


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(decode_image(data))


def assert_no_private_data(out: bytes) -> None:
    for secret in (b"SecretCam", b"Spy 3000", b"secret-xmp", COMMENT, b"TRAILING-SECRET", b"tEXt", b"iTXt",
                   b"zTXt", b"eXIf"):
        assert secret not in out, secret
    img = opened(out)
    assert img.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert set(img.getexif()) <= {ExifTags.Base.Orientation}
    assert not {"comment", "xmp", "XML:com.adobe.xmp"} & set(img.info)
    assert ("exif" in img.info) == bool(img.getexif())  # EXIF only to say how to turn the picture


def jpeg_segments(data: bytes) -> list[int]:
    """The markers from SOI up to the first SOS."""
    markers, pos = [], 2
    while data[pos + 1] != 0xDA:
        markers.append(data[pos + 1])
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return markers


# --- JPEG: lossless, at the segment level ---


def test_a_jpeg_loses_gps_make_xmp_comment_and_trailing_bytes_but_keeps_its_pixels_and_icc() -> None:
    data = encode(photo(), "JPEG", quality=90, exif=private_exif(), icc_profile=SRGB, comment=COMMENT,
                  xmp=XMP) + TRAILER
    original = opened(data)
    assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo) and original.info["xmp"] and original.info["comment"]
    out = strip(data)
    assert (out.ext, out.content_type) == ("jpg", "image/jpeg")
    assert_no_private_data(out.data)
    assert not opened(out.data).getexif()  # no orientation in the original: no EXIF at all
    assert out.data.endswith(b"\xff\xd9") and len(out.data) < len(data) - len(TRAILER)
    assert np.array_equal(pixels(out.data), pixels(data))
    assert opened(out.data).info["icc_profile"] == SRGB
    assert jpeg_segments(out.data)[0] == 0xE0  # JFIF first, as libjpeg expects
    assert 0xE1 not in jpeg_segments(out.data) and 0xFE not in jpeg_segments(out.data)


def test_a_jpeg_without_metadata_is_stored_byte_for_byte() -> None:
    data = dataset_images("grass", 1)[0].read_bytes()
    assert strip(data).data == data


def test_an_orientation_is_kept_alone_and_decodes_the_same() -> None:
    data = encode(random_image((64, 48), seed=3), "JPEG", quality=95, exif=private_exif(orientation=6),
                  xmp=XMP) + TRAILER
    out = strip(data)
    assert out.ext == "jpg"
    assert_no_private_data(out.data)
    assert dict(opened(out.data).getexif()) == {ExifTags.Base.Orientation: 6}
    assert opened(out.data).size == (64, 48)  # still stored as shot: lossless, only the tag says "rotate"
    assert np.array_equal(pixels(out.data), pixels(data))
    assert decode_image(out.data).size == decode_image(data).size == (48, 64)
    assert np.array_equal(decoded(out.data), decoded(data))


def test_an_orientation_only_in_xmp_is_kept_as_exif() -> None:
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="8" secret-xmp="1"/></x:xmpmeta>'
    data = encode(random_image((40, 30), seed=4), "JPEG", xmp=xmp)
    out = lossless_jpeg(data)
    assert b"secret-xmp" not in out and dict(opened(out).getexif()) == {ExifTags.Base.Orientation: 8}
    assert np.array_equal(decoded(out), decoded(data)) and decode_image(out).size == (30, 40)


@pytest.mark.parametrize("options", [{"progressive": True}, {"restart_marker_blocks": 1},
                                     {"progressive": True, "restart_marker_rows": 1, "subsampling": 0}],
                         ids=["progressive", "restart-markers", "progressive-restart-444"])
def test_scans_are_copied_exactly(options: dict[str, object]) -> None:
    data = encode(photo(1), "JPEG", quality=85, exif=private_exif(), **options) + TRAILER
    out = lossless_jpeg(data)
    assert_no_private_data(out)
    assert np.array_equal(pixels(out), pixels(data))
    assert opened(out).info.get("progressive", 0) == opened(data).info.get("progressive", 0)


def test_comments_and_app_segments_between_progressive_scans_are_dropped() -> None:
    data = encode(photo(2), "JPEG", quality=80, progressive=True)
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    inserted = (b"\xff\xfe" + struct.pack(">H", len(COMMENT) + 2) + COMMENT
                + b"\xff\xe1" + struct.pack(">H", len(XMP) + 2) + XMP)
    data = data[:second_scan] + inserted + data[second_scan:]
    assert np.array_equal(pixels(data), pixels(encode(photo(2), "JPEG", quality=80, progressive=True)))
    out = lossless_jpeg(data)
    assert COMMENT not in out and b"secret-xmp" not in out
    assert np.array_equal(pixels(out), pixels(data))


def test_an_ff_d9_pair_inside_a_segment_does_not_end_the_picture() -> None:
    """EOI is looked for in the entropy-coded data only: a table or profile may hold the bytes FF D9."""
    icc = SRGB + b"\xff\xd9" * 8  # opaque bytes to the decoder
    data = encode(photo(), "JPEG", icc_profile=icc, exif=private_exif())
    out = lossless_jpeg(data)
    assert opened(out).info["icc_profile"] == icc
    assert np.array_equal(pixels(out), pixels(data))


def test_a_cmyk_jpeg_keeps_its_adobe_segment() -> None:
    data = encode(random_image((48, 32), "CMYK", seed=5), "JPEG", quality=90, exif=private_exif())
    assert 0xEE in jpeg_segments(data)
    out = lossless_jpeg(data)
    assert 0xEE in jpeg_segments(out) and opened(out).mode == "CMYK"
    assert np.array_equal(np.asarray(opened(out)), np.asarray(opened(data)))
    assert np.array_equal(decoded(out), decoded(data))


def test_the_jfif_thumbnail_is_dropped() -> None:
    data = encode(photo(), "JPEG")
    assert data[2:4] == b"\xff\xe0"
    length = int.from_bytes(data[4:6], "big")
    app0 = data[6 : 4 + length]
    thumb = bytes([1, 1]) + b"\x12\x34\x56"  # a 1x1 RGB thumbnail
    with_thumb = app0[:12] + thumb
    data = data[:4] + struct.pack(">H", len(with_thumb) + 2) + with_thumb + data[4 + length :]
    out = lossless_jpeg(data)
    assert b"\x12\x34\x56" not in out[:40]
    assert out[4:6] == b"\x00\x10" and out[18:20] == b"\x00\x00"  # a 14-byte JFIF header, thumbnail 0x0
    assert out[20:22] == b"\xff\xdb"
    assert np.array_equal(pixels(out), pixels(data))


def test_an_mpo_becomes_its_first_picture_as_a_plain_jpeg() -> None:
    first, second = random_image((40, 30), seed=6), random_image((40, 30), seed=7)
    data = encode(first, "MPO", save_all=True, append_images=[second], exif=private_exif())
    assert opened(data).format == "MPO" and getattr(opened(data), "n_frames", 1) == 2
    out = strip(data)
    assert (out.ext, out.content_type) == ("jpg", "image/jpeg")
    img = opened(out.data)
    assert img.format == "JPEG" and getattr(img, "n_frames", 1) == 1 and b"MPF" not in out.data
    assert out.data.count(b"\xff\xd8") == 1
    assert np.array_equal(pixels(out.data), pixels(data))
    assert_no_private_data(out.data)


def test_two_concatenated_jpegs_keep_only_the_first() -> None:
    first = encode(random_image((40, 30), seed=8), "JPEG", exif=private_exif())
    second = encode(random_image((40, 30), seed=9), "JPEG", comment=COMMENT)
    out = lossless_jpeg(first + second)
    assert COMMENT not in out and np.array_equal(pixels(out), pixels(first))


def test_an_irregular_jpeg_is_stored_as_png_with_the_same_pixels() -> None:
    """Bytes between segments, which libjpeg skips: not rewritten at the segment level, re-encoded instead."""
    clean = encode(random_image((40, 30), seed=10), "JPEG", exif=private_exif(orientation=3))
    after_app0 = 4 + int.from_bytes(clean[4:6], "big")
    data = clean[:after_app0] + b"garbage" + clean[after_app0:]
    assert np.array_equal(decoded(data), decoded(clean))
    out = strip(data)
    assert (out.ext, out.content_type) == ("png", "image/png")
    assert_no_private_data(out.data)
    assert not opened(out.data).getexif()  # the orientation is applied to the pixels instead
    assert np.array_equal(pixels(out.data), decoded(data))


# --- every other format: re-encoded as PNG ---


def png_with_metadata(img: Image.Image, **options: object) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", COMMENT.decode())
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add_text("Software", "SecretCam firmware", zip=True)
    return encode(img, "PNG", pnginfo=info, exif=private_exif(), **options) + TRAILER


def test_a_png_loses_text_exif_and_trailing_bytes_but_keeps_pixels_and_icc() -> None:
    data = png_with_metadata(random_image((50, 40), "RGBA", seed=11), icc_profile=SRGB)
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"TRAILING-SECRET"):
        assert chunk in data
    out = strip(data)
    assert (out.ext, out.content_type) == ("png", "image/png")
    assert_no_private_data(out.data)
    assert out.data.endswith(b"IEND\xaeB`\x82")
    img = opened(out.data)
    assert img.mode == "RGBA" and img.info["icc_profile"] == SRGB
    assert np.array_equal(np.asarray(img), np.asarray(opened(data)))


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_png_modes_keep_their_pixels(mode: str) -> None:
    img = random_image((33, 21), "L" if mode == "1" else mode, seed=12)
    img = img.convert("1") if mode == "1" else img
    data = png_with_metadata(img)
    out = strip(data).data
    assert_no_private_data(out)
    assert opened(out).mode == opened(data).mode == mode
    assert np.array_equal(np.asarray(opened(out)), np.asarray(opened(data)))
    assert np.array_equal(decoded(out), decoded(data))


def test_a_palette_png_keeps_its_transparency() -> None:
    img = random_image((30, 20), "P", seed=13)
    data = encode(img, "PNG", transparency=5, exif=private_exif())
    out = strip(data).data
    assert opened(out).info["transparency"] == 5 and b"eXIf" not in out
    assert np.array_equal(decoded(out), decoded(data))


def test_a_png_orientation_is_applied_to_the_pixels() -> None:
    data = encode(random_image((40, 30), seed=14), "PNG", exif=private_exif(orientation=6))
    out = strip(data).data
    assert_no_private_data(out)
    assert not opened(out).getexif() and opened(out).size == (30, 40)
    assert np.array_equal(decoded(out), decoded(data))


def test_an_animated_png_keeps_its_first_frame_only() -> None:
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    out = strip(data).data
    assert b"acTL" not in out and b"fcTL" not in out and getattr(opened(out), "n_frames", 1) == 1
    assert np.array_equal(decoded(out), decoded(data))


def webp(lossless: bool) -> bytes:
    return encode(photo(3), "WEBP", lossless=lossless, quality=80, exif=private_exif(), xmp=XMP,
                  icc_profile=SRGB) + TRAILER


def tiff(mode: str = "RGB", orientation: int = 1) -> bytes:
    img = random_image((36, 28), mode, seed=15) if mode in ("RGB", "CMYK", "I;16") else None
    if mode in ("YCbCr", "LAB"):
        img = random_image((36, 28), seed=15).convert(mode)
    if mode == "PA":  # palette plus a varying alpha band
        palette = random_image((36, 28), "P", seed=15)
        img = Image.merge("PA", (Image.frombytes("L", palette.size, palette.tobytes()),
                                 random_image((36, 28), "L", seed=16)))
        img.putpalette(palette.getpalette() or [])
    if mode == "F":
        img = Image.fromarray(np.linspace(-10.0, 300.0, 36 * 28, dtype=np.float32).reshape(28, 36))
    if mode == "I":
        img = Image.fromarray(np.arange(-500, 36 * 28 * 80 - 500, 80, dtype=np.int32).reshape(28, 36))
    assert img is not None
    tags = {ExifTags.Base.Make: "SecretCam", ExifTags.Base.Model: "Spy 3000",
            ExifTags.Base.Orientation: orientation}
    return encode(img, "TIFF", tiffinfo=tags) + TRAILER


def gif() -> bytes:
    return encode(random_image((30, 20), "P", seed=16), "GIF", comment=COMMENT, transparency=3) + TRAILER


@pytest.mark.parametrize("make", [
    lambda: webp(lossless=True), lambda: webp(lossless=False), lambda: tiff(), lambda: tiff("CMYK"),
    lambda: tiff("I;16"), lambda: tiff("F"), lambda: tiff("I"), lambda: tiff("PA"), lambda: tiff("YCbCr"),
    lambda: tiff("LAB"), lambda: tiff(orientation=8), gif,
    lambda: animated_gif_bytes([(255, 0, 0), (0, 0, 255)]) + TRAILER,
    lambda: encode(random_image((30, 20), seed=17), "BMP") + TRAILER,
    lambda: encode(random_image((30, 20), "P", seed=18), "BMP") + TRAILER,
], ids=["webp-lossless", "webp-lossy", "tiff", "tiff-cmyk", "tiff-16bit", "tiff-float", "tiff-int32",
        "tiff-palette-alpha", "tiff-ycbcr", "tiff-lab", "tiff-orientation", "gif", "gif-animated", "bmp",
        "bmp-palette"])
def test_other_formats_become_png_with_no_metadata_and_the_same_picture(make: Callable[[], bytes]) -> None:
    data = make()
    original = opened(data)
    if original.format in ("WEBP", "TIFF"):
        assert b"SecretCam" in data  # there was something to strip
    out = strip(data)
    assert (out.ext, out.content_type) == ("png", "image/png")
    assert_no_private_data(out.data)
    assert b"SecretCam" not in out.data and b"TRAILING-SECRET" not in out.data
    assert getattr(opened(out.data), "n_frames", 1) == 1
    # What is stored decodes exactly as the upload did (for lossy WebP: as its decoded pixels).
    assert np.array_equal(decoded(out.data), decoded(data))
    if original.format == "WEBP":
        assert opened(out.data).info["icc_profile"] == SRGB
    if original.mode in ("RGB", "RGBA", "P", "L", "I;16") and original.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        assert np.array_equal(np.asarray(opened(out.data)), np.asarray(original))  # not even converted


def test_a_16_bit_png_keeps_every_bit() -> None:
    ramp = np.arange(0, 65536, 7, dtype=np.uint16)[: 96 * 64].reshape(64, 96)
    data = encode(Image.fromarray(ramp), "PNG") + TRAILER
    out = strip(data).data
    assert opened(out).mode == "I;16" and np.array_equal(np.asarray(opened(out)), ramp)


def test_a_png_made_by_pillow_without_metadata_is_stored_byte_for_byte() -> None:
    data = encode(Image.new("RGB", (32, 32), (30, 80, 160)), "PNG")
    assert strip(data).data == data


def test_a_chunk_after_iend_is_dropped() -> None:
    """Only the chunks up to IEND are read; a well-formed chunk after it is trailing bytes like any other."""
    chunk = b"tEXt" + b"Comment\x00" + COMMENT
    trailer = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    data = encode(random_image((20, 10), seed=19), "PNG") + trailer
    assert COMMENT in data
    out = strip(data).data
    assert COMMENT not in out and np.array_equal(decoded(out), decoded(data))


# --- through add_sample ---


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    return migrated_services(Settings(home=tmp_path))


def test_add_sample_stores_the_stripped_image_named_by_the_upload_hash(svc: Services) -> None:
    assert isinstance(svc.store, LocalStore)
    data = encode(photo(4), "JPEG", quality=90, exif=private_exif(orientation=6), xmp=XMP,
                  comment=COMMENT) + TRAILER
    with svc.session() as session:
        sample, created = add_sample(session, svc.store, data=data, source=SampleSource.UPLOAD)
        again, created_again = add_sample(session, svc.store, data=data, source=SampleSource.UPLOAD)
    assert created and not created_again and again.id == sample.id
    assert sample.sha256 == sha256_of(data) and sample.object_key == f"pending/{sha256_of(data)}.jpg"
    stored = svc.store.get(sample.object_key)
    assert stored != data and sample.size_bytes == len(stored) and sample.content_type == "image/jpeg"
    assert_no_private_data(stored)
    assert dict(opened(stored).getexif()) == {ExifTags.Base.Orientation: 6}
    assert np.array_equal(decoded(stored), decoded(data))
    assert list(svc.store.list()) == [sample.object_key]


def test_add_sample_stores_other_formats_as_png(svc: Services) -> None:
    data = webp(lossless=True)
    with svc.session() as session:
        sample, created = add_sample(session, svc.store, data=data, source=SampleSource.IMPORT, label="grass")
        _, created_again = add_sample(session, svc.store, data=data, source=SampleSource.UPLOAD)
    assert created and not created_again
    assert sample.object_key == f"labeled/grass/{sha256_of(data)}.png" and sample.content_type == "image/png"
    stored = svc.store.get(sample.object_key)
    assert sample.size_bytes == len(stored) and opened(stored).format == "PNG"
    assert_no_private_data(stored)
    assert np.array_equal(decoded(stored), decoded(data))
