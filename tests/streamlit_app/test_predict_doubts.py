"""The Predict page names the labels the model knows and says when an image looks like nothing it was trained on
(``AppTest`` against the real API: the session's model, trained on dandelion and grass)."""

from __future__ import annotations

import pytest

from tests.streamlit_app.test_pages import MakeApp, metric, ok, texts
from tests.utils.live_api import unused_photo
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
