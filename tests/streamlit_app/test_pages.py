"""The Streamlit pages under ``AppTest``: first with no API at all (a closed port), then against the real API
(``live_api``: uvicorn on a trained embedded home). Every test asserts that no exception reached the page."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import httpx
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Button

from model.data.samples import sha256_of
from tests.streamlit_app.conftest import VIEWS
from tests.utils.images import dataset_images, near_copy
from tests.utils.live_api import LiveApi, unused_photo

MakeApp = Callable[..., AppTest]


def texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def metric(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def button(at: AppTest, label: str) -> Button:
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]


def card_buttons(at: AppTest) -> list[str]:
    """The labels of the Predict cards' buttons (not the results table's)."""
    return [b.label for b in at.button if b.key not in {"send-selected", "send-low"}]


def ok(at: AppTest) -> AppTest:
    assert not at.exception, texts(at.exception)
    return at


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    ok(at.run())
    ok(at.switch_page("views/login.py").run())
    at.text_input(key="login-username").input(username)
    at.text_input(key="login-password").input(password)
    ok(button(at, "Log in").click().run())
    if at.session_state["token"]:
        # The app moved on to /review with st.switch_page; AppTest keeps rerunning /login unless told.
        at.switch_page("views/review.py")
    return at


def sample_id_in(message: str) -> int:
    found = re.search(r"#(\d+)", message)
    assert found, message
    return int(found.group(1))


# --- no API: every page still renders, with one friendly message ---


def test_public_pages_run_and_say_the_api_is_unreachable(app: MakeApp, closed_api: str) -> None:
    at = ok(app().run())
    assert texts(at.title) == ["Predict"]
    assert f"The Sprout API is not reachable at {closed_api}. Is it running?" in texts(at.error)
    assert len(at.file_uploader) == 1 and at.file_uploader[0].accept_multiple_files

    ok(at.switch_page("views/models.py").run())
    assert texts(at.title) == ["Models"]
    assert texts(at.error) == [f"The Sprout API is not reachable at {closed_api}. Is it running?"]


@pytest.mark.usefixtures("closed_api")
def test_logged_out_navigation_offers_login_and_withholds_review(app: MakeApp) -> None:
    at = ok(app().run())
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/review.py")  # not registered with st.navigation: unreachable
    ok(at.switch_page("views/login.py").run())
    assert texts(at.title) == ["Log in"]
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert at.text_input(key="login-password").proto.type == at.text_input(key="login-password").proto.PASSWORD
    assert [b.label for b in at.button if b.label != "Log out"] == ["Log in"]
    assert not at.error


@pytest.mark.usefixtures("closed_api")
def test_review_view_refuses_a_visitor_without_calling_the_api(app: MakeApp) -> None:
    at = ok(app(VIEWS / "review.py").run())
    assert texts(at.warning) == ["Log in as a reviewer to review samples."]
    assert not at.error  # st.stop() came before any API call (the closed port would have said so)
    assert not at.button


def test_login_and_predict_report_an_unreachable_api(app: MakeApp, closed_api: str) -> None:
    at = log_in(app(), "reviewer", "whatever-password")
    assert texts(at.error) == [f"The Sprout API is not reachable at {closed_api}. Is it running?"]
    assert at.session_state["token"] is None

    at = ok(app().run())
    at.file_uploader[0].upload("photo.jpg", unused_photo("dandelion", 0).read_bytes(), "image/jpeg")
    ok(at.run())
    assert texts(at.error).count(f"The Sprout API is not reachable at {closed_api}. Is it running?") == 2
    assert card_buttons(at) == ["Try again"]


# --- against the real API (slow: the session's first use trains the model, ~40 s) ---


@pytest.mark.slow
def test_without_a_model_images_can_still_be_sent_for_review(app: MakeApp, modelless_api: LiveApi,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPROUT_API_URL", modelless_api.url)
    at = ok(app().run())
    assert any(i.startswith("No model has been promoted yet") for i in texts(at.info))
    at.file_uploader[0].upload("first.jpg", unused_photo("grass", 4).read_bytes(), "image/jpeg")
    ok(at.run())
    [error] = texts(at.error)
    assert error  # the API's 503 sentence, whatever its wording
    assert at.selectbox[0].options == []  # no model, no known labels: a suggestion can only be typed
    ok(button(at, "Send for review").click().run())
    [message] = texts(at.success)
    assert message.startswith("Sent for review as sample")
    [sample] = modelless_api.samples("pending")
    assert sample["id"] == sample_id_in(message)
    assert sample["predicted_label"] is None and sample["suggested_label"] is None


@pytest.mark.slow
def test_predict_shows_label_confidence_and_counts_each_upload_once(app: MakeApp, api: LiveApi) -> None:
    views_before = api.metric("sprout_ui_page_views_total", page="predict")
    clicks_before = api.metric("sprout_ui_predict_clicks_total")
    at = ok(app().run())
    assert not at.error
    assert any("Answers come from model version **" in c for c in texts(at.caption))

    uploader = at.file_uploader[0]
    uploader.upload("dandelion.jpg", unused_photo("dandelion", 0).read_bytes(), "image/jpeg")
    uploader.upload("grass.jpg", unused_photo("grass", 0).read_bytes(), "image/jpeg")
    ok(at.run())
    assert not at.error, texts(at.error)
    assert metric(at, "Label") == ["dandelion", "grass"]
    assert all(re.fullmatch(r"\d{1,3}\.\d%", value) for value in metric(at, "Confidence")), metric(at, "Confidence")
    assert card_buttons(at) == ["Send for review", "Send for review"]

    for _ in range(3):  # reruns (any widget interaction) neither predict again nor count again
        ok(at.run())
    assert metric(at, "Label") == ["dandelion", "grass"]
    assert api.metric("sprout_ui_predict_clicks_total") == clicks_before + 2
    assert api.metric("sprout_ui_page_views_total", page="predict") == views_before + 1


@pytest.mark.slow
def test_send_for_review_stores_a_pending_sample_with_the_suggested_label(app: MakeApp, api: LiveApi) -> None:
    at = ok(app().run())
    at.file_uploader[0].upload("doubt.jpg", unused_photo("dandelion", 1).read_bytes(), "image/jpeg")
    ok(at.run())
    assert at.selectbox[0].options == ["dandelion", "grass"]
    at.selectbox[0].set_value("grass")
    ok(button(at, "Send for review").click().run())
    assert not at.error, texts(at.error)
    [message] = texts(at.success)
    assert message.startswith("Sent for review as sample")
    sample_id = sample_id_in(message)
    pending = {s["id"]: s for s in api.samples("pending")}
    assert pending[sample_id]["suggested_label"] == "grass"

    # The form is gone (no double submission); sending the same photo again says it is already known.
    assert card_buttons(at) == []
    at = ok(app().run())
    at.file_uploader[0].upload("again.jpg", unused_photo("dandelion", 1).read_bytes(), "image/jpeg")
    ok(at.run())
    ok(button(at, "Send for review").click().run())
    # an anonymous sender learns no sample's id or status (that would reveal training-set membership)
    assert texts(at.info) == ["This image was already submitted: it is not stored twice."]


@pytest.mark.slow
def test_wrong_password_is_refused_with_the_api_message(app: MakeApp, api: LiveApi) -> None:
    at = log_in(app(), api.username, "not-the-password")
    assert texts(at.error) == ["Incorrect user name or password."]
    assert at.session_state["token"] is None
    # the user name stays for the next try, the password does not
    assert at.text_input(key="login-username").value == api.username
    assert at.text_input(key="login-password").value == ""
    with pytest.raises(ValueError):
        at.switch_page("views/review.py")


def test_the_queue_keeps_its_order_mode_and_page_in_the_url_across_a_reload(app: MakeApp, api: LiveApi) -> None:
    at = log_in(app(), api.username, api.password)
    assert (at.query_params["order"], at.query_params["mode"], at.query_params["page"]) == ("uncertainty", "cards", "1")
    at.session_state["review_order"] = "novelty"
    ok(at.run())
    ok(at.button(key="review-mode").click().run())  # the Grid button (key G)
    assert (at.query_params["order"], at.query_params["mode"]) == ("novelty", "grid")
    # a reload: a new session, logged in again from its cookie, opens the review page on the same URL
    again = app()
    ok(again.run())
    for key in ("token", "username", "is_admin", "token_expires_at"):
        again.session_state[key] = at.session_state[key]
    ok(again.run())  # the navigation now offers the review page
    again.query_params.update({"order": "novelty", "mode": "grid", "page": "1"})
    ok(again.switch_page("views/review.py").run())
    assert again.session_state["review_order"] == "novelty" and again.session_state["review_grid"] is True
    assert again.button(key="review-mode").label == "Cards"


@pytest.mark.slow
def test_reviewer_logs_in_and_approves_corrects_and_rejects(app: MakeApp, api: LiveApi) -> None:
    approve = api.submit(unused_photo("grass", 1).read_bytes())
    correct = api.submit(unused_photo("dandelion", 2).read_bytes())
    reject = api.submit(unused_photo("grass", 2).read_bytes())

    at = log_in(app(), api.username, api.password)
    assert texts(at.title) == ["Review"]  # /login moved on to the queue
    assert texts(at.success) == [f"Logged in as {api.username}."]
    assert at.session_state["token"]
    [bar] = at.get("progress")
    assert re.fullmatch(r"\*\*\d+ of 10\*\* new samples approved since the last training", bar.proto.text)
    shown = [b.key for b in at.button if b.key and b.key.startswith("approve-")]
    assert {f"approve-{s['id']}" for s in (approve, correct, reject)} <= set(shown)
    confidences = [float(m.rstrip("%")) for m in metric(at, "Confidence")]
    assert confidences == sorted(confidences)  # least confident first
    serving = api.get("/models")["serving"]
    assert f"by model v{serving}" in texts(at.caption)  # each card names the version that predicted it

    ok(at.button(key=f"approve-{approve['id']}").click().run())
    assert texts(at.success) == [f"Approved sample #{approve['id']} as {approve['predicted_label']}."]
    at.selectbox(key=f"label-{correct['id']}").set_value("grass")
    ok(at.button(key=f"correct-{correct['id']}").click().run())
    assert texts(at.success) == [f"Approved sample #{correct['id']} as grass (corrected)."]
    ok(at.button(key=f"reject-{reject['id']}").click().run())
    assert texts(at.success) == [f"Rejected sample #{reject['id']}."]
    assert not at.error

    approved = {s["id"]: s for s in api.samples("approved")}
    assert approved[approve["id"]]["label"] == approve["predicted_label"]
    assert approved[correct["id"]]["label"] == "grass"
    assert reject["id"] in {s["id"] for s in api.samples("rejected")}
    remaining = {b.key for b in at.button if b.key}
    assert not {f"approve-{s['id']}" for s in (approve, correct, reject)} & remaining


@pytest.mark.slow
def test_a_suggestion_that_contradicts_the_near_duplicates_label_is_flagged_on_the_card(
        app: MakeApp, api: LiveApi) -> None:
    """An anonymous uploader's receipt names no near-duplicate; the reviewer's card says the suggestion contradicts
    the label its near-duplicate group was approved with."""
    trained = {s["sha256"]: s for s in api.samples("approved")}
    original = next(p for p in dataset_images("grass", 20)[7:] if sha256_of(p.read_bytes()) in trained)
    copy = api.submit(near_copy(original.read_bytes(), crop=0.10, scale=0.85, quality=72), label="clover")
    assert copy["near_duplicates"] == [], copy

    at = log_in(app(), api.username, api.password)
    at.session_state["review_order"] = "suspect"  # contradicted suggestions first
    ok(at.run())
    expected = "The suggestion **clover** contradicts this image's near-duplicates, approved as **grass**."
    assert expected in texts(at.warning), (texts(at.warning), [b.key for b in at.button])
    assert at.button(key=f"approve-{copy['id']}")


@pytest.mark.slow
@pytest.mark.usefixtures("api")
def test_a_token_the_api_refuses_logs_the_session_out(app: MakeApp) -> None:
    at = app()
    at.session_state["token"] = "forged.token.value"
    at.session_state["username"] = "mallory"
    at.session_state["token_expires_at"] = time.time() + 600
    ok(at.run())
    ok(at.switch_page("views/review.py").run())
    assert texts(at.warning) == ["Your session has expired. Please log in again."]
    assert at.session_state["token"] is None
    assert texts(at.title) == ["Log in"]  # /review, logged out again: the login form


@pytest.mark.slow
def test_logout_button_ends_the_session(app: MakeApp, api: LiveApi) -> None:
    at = log_in(app(), api.username, api.password)
    ok(at.button(key="logout").click().run())
    assert at.session_state["token"] is None
    assert texts(at.info) == ["You are logged out."]
    assert texts(at.title) == ["Predict"]
    with pytest.raises(ValueError):
        at.switch_page("views/review.py")


@pytest.mark.slow
@pytest.mark.usefixtures("api")
def test_models_page_shows_history_to_visitors(app: MakeApp) -> None:
    at = ok(app().run())
    ok(at.switch_page("views/models.py").run())
    assert not at.error
    assert metric(at, "Champion") and metric(at, "Champion")[0].startswith("v")
    tables = [d.value for d in at.dataframe]
    versions = next(t for t in tables if "champion" in t.columns)
    runs = next(t for t in tables if "gate" in t.columns)
    assert "1" in set(versions["version"]) and versions["champion"].sum() == 1
    evidence = " ".join(m.value for m in at.markdown)
    assert "Cross-validated accuracy" in evidence and "held-out test images" in evidence  # the gate's evidence
    candidates = next(t for t in tables if "CV log loss" in t.columns)  # every EfficientNet-Lite was tried
    assert len(candidates) == 3
    assert {"gate", "reason", "accuracy"} <= set(runs.columns) and "passed" in set(runs["gate"])
    per_class = next(t for t in tables if "recall" in t.columns)  # the champion's, per label
    assert list(per_class["label"]) == ["dandelion", "grass"]
    assert any("An admin can log in" in c for c in texts(at.caption))
    assert not [b for b in at.button if b.label == "Make it the champion"]


@pytest.mark.slow
def test_models_page_shows_per_label_table_and_confusion_matrix_for_four_labels(
        app: MakeApp, scenes_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPROUT_API_URL", scenes_api.url)
    at = ok(app().run())
    ok(at.switch_page("views/models.py").run())
    labels = ["buildings", "forest", "glacier", "sea"]
    metrics = scenes_api.get("/models")["versions"][0]["metrics"]
    tables = [d.value for d in at.dataframe]
    per_class = next(t for t in tables if "recall" in t.columns)
    assert list(per_class["label"]) == labels
    assert list(per_class.columns) == ["label", "precision", "recall", "F1", "support", "most confused with"]
    assert list(per_class["support"]) == [metrics["per_class"][label]["support"] for label in labels]
    for row in per_class.to_dict("records"):  # recall is undefined (empty) for a label without test images
        if row["support"]:
            assert row["recall"] == pytest.approx(metrics["per_class"][row["label"]]["recall"]), row
        else:
            assert math.isnan(row["recall"]) and math.isnan(row["F1"]), row
    confusion = next(t for t in tables if list(t.columns) == labels)  # k x k, label names on both axes
    assert list(confusion.index) == labels and confusion.values.tolist() == metrics["confusion_matrix"]["matrix"]
    heatmaps = [c for c in at.get("vega_lite_chart") if '"predicted"' in c.proto.spec]
    assert len(heatmaps) == 1 and all(label in heatmaps[0].proto.spec for label in labels)
    [choice] = [s for s in at.get("button_group") if s.proto.label == "Version"]
    assert choice is not None


@pytest.mark.slow
def test_review_page_reports_the_class_balance_and_the_under_represented_label(
        app: MakeApp, scenes_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPROUT_API_URL", scenes_api.url)
    at = log_in(app(), scenes_api.username, scenes_api.password)
    ok(at.run())
    [warning] = [w for w in texts(at.warning) if "under-represented" in w]
    assert warning.startswith("Label 'glacier' is under-represented: 6 approved samples")
    shares = next(d.value for d in at.dataframe if "under-represented" in d.value.columns)
    assert list(shares["label"]) == ["buildings", "forest", "sea", "glacier"]
    assert list(shares["approved"]) == [20, 20, 20, 6] and list(shares["under-represented"]) == [False] * 3 + [True]
    assert shares["share"].sum() == pytest.approx(1.0)
    assert (shares["train"] + shares["val"] + shares["test"]).tolist() == [20, 20, 20, 6]


@pytest.mark.slow
def test_a_reviewer_who_is_no_admin_gets_no_promote_or_force_controls(app: MakeApp, api: LiveApi) -> None:
    at = log_in(app(), api.username, api.password)
    ok(at.switch_page("views/models.py").run())
    assert not [b for b in at.button if b.label == "Make it the champion"]
    assert any("An admin can log in" in c for c in texts(at.caption))
    assert not [c for c in at.checkbox if "Train even with fewer" in c.label]
    assert any("An admin can rename, merge or retire a label" in c for c in texts(at.caption))
    assert not [s for s in at.selectbox if s.label == "Label"]  # the labels are listed, the controls withheld
    # the Retrain box says how a retrain starts: the approval threshold, the event, the weekly fallback
    threshold = httpx.get(f"{api.url}/admin/stats", headers=api.headers()).json()["min_new_samples"]
    assert any(f"A retrain starts by itself once {threshold} newly approved samples exist" in c
               and "weekly as a fallback" in c for c in texts(at.caption)), texts(at.caption)
    ok(at.switch_page("views/review.py").run())
    [order] = [b for b in at.get("button_group") if b.proto.label == "Order"]
    assert "Contradicted" in [o.content for o in order.proto.options]  # not "Suspect": that is the lane's name

