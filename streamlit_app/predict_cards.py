"""The Predict page's logic without Streamlit: an image's preview, its row in the results table, which images are
low-confidence, which ones a bulk "send for review" sends. Each image is judged on its own: one image's failure
never touches another's."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

PREVIEW_SIDE = 640  # pixels: the longest side of a card's preview
PREVIEW_MAX_PIXELS = 50_000_000  # not decoded here above the API's ceiling (SPROUT_MAX_IMAGE_MEGAPIXELS ≤ 50)


class PreviewError(Exception):
    """The image cannot be shown; ``str(error)`` is the sentence for its card."""


def preview(data: bytes, side: int = PREVIEW_SIDE, max_pixels: int = PREVIEW_MAX_PIXELS) -> bytes:
    """A PNG thumbnail of the image, upright (EXIF orientation applied), decoded in full here (a truncated or
    corrupt file fails now, not later in ``st.image``); raises ``PreviewError`` for anything Pillow cannot decode."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > max_pixels:
                raise Image.DecompressionBombError
            opened.draft("RGB", (side, side))  # a large JPEG decodes at a reduced scale: fast
            image = ImageOps.exif_transpose(opened)
            image.load()
            image.thumbnail((side, side))
            shown = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            out = io.BytesIO()
            shown.save(out, format="PNG")
            return out.getvalue()
    except UnidentifiedImageError:
        raise PreviewError("This file is not an image Sprout can read.") from None
    except Image.DecompressionBombError:
        raise PreviewError("This image has too many pixels to show.") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data: Pillow's errors vary
        raise PreviewError(f"This image is damaged and cannot be shown ({exc}).") from None


def is_low_confidence(answer: dict[str, Any]) -> bool:
    """The model answered but is not sure (``abstained``: below its label's abstain threshold, the setting
    ``SPROUT_ABSTAIN_PRECISION``). An image without an answer is not low-confidence: it has an error instead."""
    result = answer.get("result")
    return bool(result and result.get("abstained"))


@dataclass(frozen=True)
class Upload:
    """What the table needs of one uploaded file."""

    file_id: str
    name: str


def result_row(upload: Upload, answer: dict[str, Any] | None, sent: dict[str, Any] | None) -> dict[str, Any]:
    """One row of the results table: the image's name, label, confidence, flags, review state and error."""
    result = (answer or {}).get("result") or {}
    error = (answer or {}).get("error")
    if sent and sent.get("error"):
        error = f"Not sent for review: {sent['error']}"
    if sent and not sent.get("error"):
        review = f"sample #{sent['id']}" if sent.get("created") else "already submitted"
    else:
        review = ""
    return {"image": upload.name, "label": result.get("label"), "confidence": result.get("confidence"),
            "not sure": bool(result.get("abstained")), "unfamiliar": bool(result.get("unfamiliar")),
            "review": review, "error": error or ""}


def to_send(uploads: list[Upload], chosen: set[str], sent: dict[str, Any]) -> list[Upload]:
    """The chosen uploads not yet sent for review (a failed send may be tried again), in upload order."""
    return [u for u in uploads if u.file_id in chosen and (u.file_id not in sent or sent[u.file_id].get("error"))]


def low_confidence_ids(uploads: list[Upload], answers: dict[str, dict[str, Any]]) -> set[str]:
    """The uploads whose answer is low-confidence (see ``is_low_confidence``)."""
    return {u.file_id for u in uploads if is_low_confidence(answers.get(u.file_id) or {})}


def sent_entry(sample: dict[str, Any], created: bool) -> dict[str, Any]:
    """What the page keeps of a ``POST /samples`` receipt (``near_duplicates`` reach reviewers only)."""
    return {"id": sample.get("id"), "status": sample.get("status"), "created": created,
            "label": sample.get("suggested_label"),
            "near_duplicates": [d.get("id") for d in sample.get("near_duplicates") or []]}
