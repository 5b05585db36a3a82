"""The Predict page cannot crash: each image is its own card, a corrupt one says so in its card only, and the
results table sends the checked images (or the low-confidence ones) for review. Logic: ``predict_cards``; the
page under ``AppTest`` against the real API (the session's model, trained on dandelion and grass)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from model.data.samples import sha256_of
from streamlit_app import predict_cards as cards
from tests.streamlit_app.test_pages import MakeApp, button, log_in, metric, ok, sample_id_in, texts
from tests.utils.images import dataset_images, exif_jpeg_bytes, near_copy, png_claiming_size, random_image_bytes
from tests.utils.live_api import PER_LABEL, LiveApi, unused_photo
from tests.utils.paths import SCENES

# A JPEG's start-of-image and APP0 markers, then noise: Pillow cannot even identify it (the API answers 400).
CORRUPT_JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


def test_preview_is_a_png_thumbnail_of_a_valid_image() -> None:
    data = cards.preview(random_image_bytes(size=(1600, 900)), side=320)
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("PNG", (320, 180))
    with Image.open(io.BytesIO(cards.preview(exif_jpeg_bytes(6, size=(64, 48))))) as image:
        assert image.size == (48, 64)  # upright: EXIF orientation 6 is a quarter turn


@pytest.mark.parametrize(("data", "says"), [
    (CORRUPT_JPEG, "not an image Sprout can read"),
    (random_image_bytes(size=(400, 300))[:600], "damaged"),  # a truncated JPEG: identified, not decodable
    (b"", "not an image Sprout can read"),
    (png_claiming_size(12_000, 9_000), "too many pixels"),  # 108 MP: refused before decoding
])
def test_preview_turns_any_unreadable_file_into_one_sentence(data: bytes, says: str) -> None:
    with pytest.raises(cards.PreviewError, match=says):
        cards.preview(data)


def test_rows_flags_and_what_a_bulk_send_sends() -> None:
    items = [cards.Upload("a", "a.jpg"), cards.Upload("b", "b.jpg"), cards.Upload("c", "c.jpg"),
             cards.Upload("d", "d.jpg")]
    answers = {"a": {"result": {"label": "sea", "confidence": 0.41, "abstained": True, "unfamiliar": False}},
               "b": {"result": {"label": "forest", "confidence": 0.97, "abstained": False, "unfamiliar": True}},
               "c": {"error": "The file is not an image.", "status": 400},
               "d": {"result": {"label": "glacier", "confidence": 0.38, "abstained": True}}}
    sent = {"d": {"id": 7, "created": True}, "c": {"error": "The file is not an image."}}
    assert cards.result_row(items[0], answers["a"], None) == {
        "image": "a.jpg", "label": "sea", "confidence": 0.41, "not sure": True, "unfamiliar": False,
        "review": "", "error": ""}
    assert cards.result_row(items[2], answers["c"], sent["c"])["error"] == \
        "Not sent for review: The file is not an image."
    assert cards.result_row(items[3], answers["d"], sent["d"])["review"] == "sample #7"
    assert cards.result_row(items[1], answers["b"], {"id": None, "created": False})["review"] == "already submitted"
    assert cards.low_confidence_ids(items, answers) == {"a", "d"}  # abstained; an error is not low-confidence
    # already sent (d) is not sent twice; a failed send (c) may be tried again; upload order is kept
    assert [u.file_id for u in cards.to_send(items, {"d", "c", "a"}, sent)] == ["a", "c"]


@pytest.mark.slow
@pytest.mark.usefixtures("api")  # the real API, SPROUT_API_URL pointing at it
def test_a_corrupt_jpeg_among_valid_ones_errs_in_its_own_card_only(app: MakeApp) -> None:
    at = ok(app().run())
    uploader = at.file_uploader[0]
    uploader.upload("grass.jpg", unused_photo("grass", 60).read_bytes(), "image/jpeg")
    uploader.upload("broken.jpg", CORRUPT_JPEG, "image/jpeg")
    uploader.upload("dandelion.jpg", unused_photo("dandelion", 60).read_bytes(), "image/jpeg")
    ok(at.run())
    assert metric(at, "Label") == ["grass", "dandelion"], metric(at, "Label")  # both valid results, in order
    errors = texts(at.error)
    assert len(errors) == 2, errors  # the broken card's preview and the API's refusal, nothing else
    assert errors[0] == "**broken.jpg**: This file is not an image Sprout can read."
    assert len(at.image) == 2  # the two valid previews
    # the table: one row per image, the API's 4xx sentence in the broken one's row
    rows = [m for m in texts(at.markdown) if m.startswith(":red[")]
    assert rows == [f":red[{errors[1]}]"], rows
    assert len(at.checkbox) == 3


@pytest.mark.slow
def test_send_selected_sends_the_checked_images_and_keeps_each_failure_in_its_row(app: MakeApp,
                                                                                  api: LiveApi) -> None:
    at = ok(app().run())
    uploader = at.file_uploader[0]
    uploader.upload("keep.jpg", unused_photo("grass", 61).read_bytes(), "image/jpeg")
    uploader.upload("broken.jpg", CORRUPT_JPEG, "image/jpeg")
    uploader.upload("send.jpg", unused_photo("dandelion", 61).read_bytes(), "image/jpeg")
    ok(at.run())
    assert button(at, "Send selected for review").disabled  # nothing checked yet
    at.checkbox[1].check()
    at.checkbox[2].check()
    ok(at.run())
    ok(button(at, "Send selected for review").click().run())
    [sent] = [s for s in texts(at.success) if s.startswith("Sent for review as sample")]
    sample_id = sample_id_in(sent)
    try:
        assert "Sent 1 of 2 images for review. 1 failed: see their rows." in texts(at.warning)
        assert any(m.startswith(":red[Not sent for review: ") for m in texts(at.markdown)), texts(at.markdown)
        assert f"sample #{sample_id}" in texts(at.markdown)
        pending = {s["id"]: s for s in api.samples("pending")}
        assert sample_id in pending and pending[sample_id]["suggested_label"] is None
        assert metric(at, "Label") == ["grass", "dandelion"]  # the unchecked card is untouched
        assert [b.label for b in at.button].count("Send for review") == 1  # keep.jpg's form only
        assert at.checkbox[2].disabled and not at.checkbox[2].value  # sent: no second send
    finally:  # the shared API's queue stays as other tests expect it
        api.reject(sample_id)


@pytest.mark.slow
def test_a_reviewer_learns_what_an_upload_nearly_duplicates_and_a_visitor_does_not(app: MakeApp,
                                                                                    api: LiveApi) -> None:
    trained = {s["sha256"]: s["id"] for s in api.samples("approved")}
    original = next(p for p in dataset_images("grass", PER_LABEL)[12:] if sha256_of(p.read_bytes()) in trained)
    original_id = trained[sha256_of(original.read_bytes())]
    visitor_copy = near_copy(original.read_bytes(), crop=0.08, scale=0.7, quality=73)
    reviewer_copy = near_copy(original.read_bytes(), crop=0.12, scale=0.75, quality=74)
    sent: list[int] = []
    try:
        at = ok(app().run())  # a visitor: no note, no id but the new sample's own
        at.file_uploader[0].upload("copy.jpg", visitor_copy, "image/jpeg")
        ok(at.run())
        ok(button(at, "Send for review").click().run())
        [message] = texts(at.success)
        sent.append(sample_id_in(message))
        assert not [i for i in texts(at.info) if "nearly duplicates" in i]

        at = log_in(app(), api.username, api.password)
        ok(at.switch_page("views/predict.py").run())
        at.file_uploader[0].upload("copy.jpg", reviewer_copy, "image/jpeg")
        ok(at.run())
        ok(button(at, "Send for review").click().run())
        [message] = texts(at.success)
        sent.append(sample_id_in(message))
        [note] = [i for i in texts(at.info) if "nearly duplicates" in i]
        assert f"#{original_id}" in note, note
    finally:  # the shared API's queue stays as other tests expect it
        api.reject(*sent)


@pytest.mark.slow
def test_send_all_low_confidence_sends_exactly_the_images_the_model_abstained_on(app: MakeApp,
                                                                                 api: LiveApi) -> None:
    at = ok(app().run())
    at.file_uploader[0].upload("grass.jpg", unused_photo("grass", 63).read_bytes(), "image/jpeg")
    for photo in sorted((SCENES / "glacier").glob("*.jpg"))[2:8]:  # unlike anything trained: often not sure
        at.file_uploader[0].upload(photo.name, photo.read_bytes(), "image/jpeg")
    ok(at.run())
    answers = at.session_state["predictions"]
    low = [f for f, a in answers.items() if a["result"]["abstained"]]
    assert low and len(low) < len(answers), answers  # some, not all (the grass photo is sure)
    low_button = [b for b in at.button if b.key == "send-low"][0]
    assert low_button.label == f"Send all low-confidence for review ({len(low)})"
    ok(low_button.click().run())
    sent = at.session_state["submissions"]
    ids = [s["id"] for s in sent.values() if s.get("created")]
    try:
        assert set(sent) == set(low), (sent, low)
        assert f"Sent {len(low)} of {len(low)} images for review." in texts(at.success)
        assert len([s for s in texts(at.success) if s.startswith("Sent for review as sample")]) == len(low)
        assert [b for b in at.button if b.key == "send-low"][0].disabled  # nothing left to send
    finally:  # the shared API's queue stays as other tests expect it
        api.reject(*ids)
