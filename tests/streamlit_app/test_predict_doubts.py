"""The Predict page names the labels the model knows and says when an image looks like nothing it was trained on;
the Review page offers such an image first and says why (``AppTest`` against the real API: the session's model,
trained on dandelion and grass)."""

from __future__ import annotations

import httpx
import pytest

from tests.streamlit_app.test_pages import MakeApp, log_in, metric, ok, texts
from tests.utils.live_api import LiveApi, unused_photo
from tests.utils.paths import SCENES

UNFAMILIAR = "This does not look like anything the model was trained on"


@pytest.mark.slow
@pytest.mark.usefixtures("api")  # the real API, SPROUT_API_URL pointing at it
def test_predict_names_the_known_labels_and_flags_an_unfamiliar_photo(app: MakeApp) -> None:
    at = ok(app().run())
    [caption] = [c for c in texts(at.caption) if "Answers come from model version" in c]
    assert "It knows 2 labels: **dandelion**, **grass**." in caption, caption
    at.file_uploader[0].upload("grass.jpg", unused_photo("grass", 2).read_bytes(), "image/jpeg")
    at.file_uploader[0].upload("glacier.jpg", sorted((SCENES / "glacier").glob("*.jpg"))[0].read_bytes(),
                               "image/jpeg")
    ok(at.run())
    assert not at.error, texts(at.error)
    assert metric(at, "Label")[0] == "grass" and metric(at, "Label")[1] in {"dandelion", "grass"}
    [warning] = texts(at.warning)  # the glacier only
    assert warning.startswith(UNFAMILIAR) and "(dandelion, grass)" in warning


@pytest.mark.slow
def test_the_review_queue_offers_the_unfamiliar_photo_first_and_says_why(app: MakeApp, api: LiveApi) -> None:
    glacier = api.submit(sorted((SCENES / "glacier").glob("*.jpg"))[1].read_bytes())
    try:
        at = log_in(app(), api.username, api.password)
        shown = [b.key for b in at.button if b.key and b.key.startswith("approve-")]
        assert shown[0] == f"approve-{glacier['id']}", shown
        notes = [m for m in texts(at.markdown) if m.startswith(":material/help: Unfamiliar")]
        assert len(notes) == 1, notes
        assert any("those the model found unfamiliar first" in c for c in texts(at.caption))
    finally:  # the shared API's queue stays as other tests expect it
        resp = httpx.post(f"{api.url}/admin/samples/{glacier['id']}/review", json={"action": "reject"},
                          headers=api.headers())
        assert resp.status_code == 200, resp.text
