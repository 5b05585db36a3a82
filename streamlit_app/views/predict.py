"""Predict: drop images, see each one's label, confidence and probabilities, and whether the model is not sure or
has never seen anything like the image; send any of them for review."""

from __future__ import annotations

import logging
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from streamlit_app import client, state, ui
from streamlit_app import predict_cards as cards
from streamlit_app.charts import top_and_other
from streamlit_app.client import ApiError

log = logging.getLogger("sprout.ui")

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif"]


def model_caption() -> None:
    """Which model answers (or why none does). The page stays usable when this read fails."""
    try:
        models = client.read_models()
    except ApiError as err:
        ui.show_error(err)
        return
    version = models.get("serving") or models.get("champion")
    if version:
        labels = known_labels(models, version)
        knows = f" It knows {len(labels)} labels: {', '.join(f'**{label}**' for label in labels)}." if labels else ""
        st.caption(f":material/verified: Answers come from model version **{version}**, the current champion.{knows}")
    else:
        st.info("No model has been promoted yet, so images cannot be labeled. You can still send them for "
                "review: approved images train the first model.", icon=":material/hourglass_empty:")


def known_labels(models: dict[str, Any], version: str) -> list[str]:
    """The labels a version of ``GET /models`` knows (none for a version without its training run)."""
    row = next((v for v in models.get("versions") or [] if v.get("version") == version), None)
    return sorted(row.get("labels") or []) if row else []


def doubts(result: dict[str, Any]) -> None:
    """Say so when the image looks like nothing the model was trained on, or when the model is not sure."""
    known = ", ".join(sorted(result["probabilities"]))
    if result.get("unfamiliar"):
        st.warning("This does not look like anything the model was trained on: its label is only the closest of "
                   f"the ones it knows ({known}).", icon=":material/help:")
    if result.get("abstained"):
        st.info(f"Not sure: **{result['label']}** is the model's best guess, but at this confidence its answers "
                "for that label are too often wrong to rely on.", icon=":material/psychology_alt:")


def prediction_for(upload: UploadedFile) -> dict[str, Any]:
    """The API's answer for this upload, asked once: reruns reuse it, so one upload is one predict event. Any
    failure becomes this upload's ``{"error", "status"}``: it never reaches another image."""
    answers: dict[str, dict[str, Any]] = st.session_state[state.PREDICTIONS]
    if upload.file_id not in answers:
        try:
            with st.spinner(f"Classifying {upload.name}…"):
                answers[upload.file_id] = {"result": client.predict(upload.name, upload.getvalue(), upload.type)}
        except ApiError as err:
            answers[upload.file_id] = {"error": err.detail, "status": err.status}
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is this image's error only
            log.exception("predicting %s failed", upload.name)
            answers[upload.file_id] = {"error": f"This image could not be classified ({exc}).", "status": None}
        client.send_event("predict", "predict_click")
    return answers[upload.file_id]


@st.cache_data(max_entries=64, show_spinner=False)
def _preview(data: bytes) -> bytes:
    return cards.preview(data)


def show_preview(upload: UploadedFile) -> None:
    """The image (a thumbnail decoded here), or, for a file that cannot be shown, why not."""
    try:
        st.image(_preview(upload.getvalue()), caption=upload.name, width="stretch")
    except cards.PreviewError as err:
        st.error(f"**{upload.name}**: {err}", icon=":material/broken_image:")


def probability_chart(probabilities: dict[str, float]) -> None:
    """The likeliest labels' probabilities (the top five and "other" for more labels), the answer highlighted."""
    folded = top_and_other(probabilities)
    data = pd.DataFrame({"label": list(folded), "probability": list(folded.values())})
    bars = alt.Chart(data).mark_bar(cornerRadiusEnd=3).encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
        y=alt.Y("label:N", sort=list(folded), title=None, axis=alt.Axis(labelFontSize=13)),
        color=alt.condition(alt.datum.label == next(iter(folded)), alt.value("#2e7d32"), alt.value("#a5d6a7")),
        tooltip=[alt.Tooltip("label:N"), alt.Tooltip("probability:Q", format=".1%")],
    )
    st.altair_chart(bars.properties(height=36 * len(data) + 30), width="stretch")


def send_for_review(upload: UploadedFile, labels: list[str]) -> None:
    """``POST /samples`` with an optional suggested label; afterwards the new sample's id (or, for an image sent
    before, a note without one) instead of the form. A failed send says why and offers the form again."""
    sent: dict[str, dict[str, Any]] = st.session_state[state.SUBMISSIONS]
    entry = sent.get(upload.file_id)
    if entry and entry.get("error"):
        st.error(f"Not sent for review: {entry['error']}", icon=":material/error:")
    elif entry:
        sent_note(entry)
        return
    with st.form(f"send-{upload.file_id}", border=False):
        label = st.selectbox("Suggested label (optional)", labels, index=None, accept_new_options=True,
                             placeholder="Choose or type the right label",
                             help="What the image really shows, if you know. A reviewer decides.")
        if not st.form_submit_button("Send for review", icon=":material/outbox:"):
            return
    try:
        submit(upload, label=(label or "").strip() or None)
    except ApiError as err:
        ui.show_error(err)
        return
    st.rerun()


def submit(upload: UploadedFile, *, label: str | None = None) -> None:
    """Send one upload for review and keep the receipt (a reviewer's token, when logged in, lets the API name the
    near-duplicates); raises ``ApiError``."""
    sample, created = client.submit_sample(upload.name, upload.getvalue(), upload.type, label=label,
                                           token=state.token())
    st.session_state[state.SUBMISSIONS][upload.file_id] = cards.sent_entry(sample, created)


def sent_note(sample: dict[str, Any]) -> None:
    """What became of an image sent for review."""
    if sample["created"]:
        suggested = f" with your label **{sample['label']}**" if sample["label"] else ""
        st.success(f"Sent for review as sample **#{sample['id']}**{suggested}. Thank you!",
                   icon=":material/task_alt:")
    else:
        # the API names no existing sample to an anonymous sender (its status would reveal training-set membership)
        st.info("This image was already submitted: it is not stored twice.", icon=":material/content_copy:")
    if sample.get("near_duplicates"):  # only a reviewer's receipt names them
        ids = ", ".join(f"#{i}" for i in sample["near_duplicates"])
        st.info(f"It nearly duplicates sample(s) {ids}, already submitted.", icon=":material/filter_none:")


def result_card(index: int, upload: UploadedFile, answer: dict[str, Any]) -> None:
    """One image's card. Whatever fails in it is said in it: the other cards are drawn all the same."""
    with st.container(border=True, key=f"prediction-{index}"):
        try:
            card_body(upload, answer)
        except Exception as exc:  # noqa: BLE001 - one image must never take the page down
            log.exception("the card of %s failed", upload.name)
            st.error(f"**{upload.name}**: this image's card could not be shown ({exc}).", icon=":material/error:")


def card_body(upload: UploadedFile, answer: dict[str, Any]) -> None:
    picture, details = st.columns([2, 3], gap="large")
    with picture:
        show_preview(upload)
    with details:
        if "error" in answer:
            st.error(answer["error"], icon=":material/error:")
            if st.button("Try again", key=f"retry-{upload.file_id}", icon=":material/refresh:"):
                st.session_state[state.PREDICTIONS].pop(upload.file_id, None)
                st.rerun()
            if answer["status"] == 503:  # no model yet: a reviewer can still label it
                send_for_review(upload, labels=[])
            return
        result = answer["result"]
        label_col, confidence_col = st.columns(2)
        label_col.metric("Label", result["label"])
        confidence_col.metric("Confidence", ui.percent(result["confidence"]))
        doubts(result)
        probability_chart(result["probabilities"])
        st.caption(f"Model version {result.get('model_version') or '—'}")
        send_for_review(upload, labels=sorted(result["probabilities"]))


SENT_NOTE = "predict-sent-note"  # session key: what the last bulk send did, shown once
TABLE_WIDTHS = [0.5, 2.6, 1.8, 1.9, 1.4, 1.9, 1.8, 3]
TABLE_HEADER = ["", "Image", "Label", "Confidence", "Not sure", "Unfamiliar", "Review", "Error"]


def results_table(uploads: list[UploadedFile], answers: dict[str, dict[str, Any]]) -> None:
    """One row per image with a checkbox; send the checked ones, or every low-confidence one, for review."""
    sent: dict[str, dict[str, Any]] = st.session_state[state.SUBMISSIONS]
    items = [cards.Upload(u.file_id, u.name) for u in uploads]
    with st.container(border=True, key="predict-results"):
        st.subheader("Results", anchor=False)
        for column, title in zip(st.columns(TABLE_WIDTHS), TABLE_HEADER, strict=True):
            column.markdown(f"**{title}**" if title else "")
        for item in items:
            row = cards.result_row(item, answers.get(item.file_id), sent.get(item.file_id))
            cols = st.columns(TABLE_WIDTHS, vertical_alignment="center")
            cols[0].checkbox("Select", key=f"pick-{item.file_id}", label_visibility="collapsed",
                             disabled=item.file_id in sent and not sent[item.file_id].get("error"))
            cols[1].write(row["image"])
            cols[2].write(row["label"] or "—")
            cols[3].write(ui.percent(row["confidence"]))
            cols[4].write("yes" if row["not sure"] else "")
            cols[5].write("yes" if row["unfamiliar"] else "")
            cols[6].write(row["review"])
            cols[7].write(f":red[{row['error']}]" if row["error"] else "")
        chosen = {i.file_id for i in items if st.session_state.get(f"pick-{i.file_id}")}
        low = cards.low_confidence_ids(items, answers)
        left, right = st.columns(2)
        if left.button("Send selected for review", icon=":material/outbox:", disabled=not chosen,
                       key="send-selected"):
            send_many(uploads, cards.to_send(items, chosen, sent))
        if right.button(f"Send all low-confidence for review ({len(low)})", icon=":material/psychology_alt:",
                        disabled=not cards.to_send(items, low, sent), key="send-low",
                        help="The images the model is not sure about (it abstained)."):
            send_many(uploads, cards.to_send(items, low, sent))
        if note := st.session_state.pop(SENT_NOTE, None):  # next to the buttons, where the eyes are
            message, failed = note
            (st.warning if failed else st.success)(message, icon=":material/outbox:")


def send_many(uploads: list[UploadedFile], targets: list[cards.Upload]) -> None:
    """Send each target for review without a suggested label; each failure stays with its image."""
    by_id = {u.file_id: u for u in uploads}
    sent: dict[str, dict[str, Any]] = st.session_state[state.SUBMISSIONS]
    for target in targets:
        try:
            submit(by_id[target.file_id])
        except ApiError as err:
            sent[target.file_id] = {"error": err.detail}
        st.session_state.pop(f"pick-{target.file_id}", None)
    failed = sum(1 for t in targets if sent.get(t.file_id, {}).get("error"))
    st.session_state[SENT_NOTE] = (f"Sent {len(targets) - failed} of {len(targets)} images for review."
                                   + (f" {failed} failed: see their rows." if failed else ""), bool(failed))
    st.rerun()


def predict_page() -> None:
    ui.record_view("predict")
    st.title("Predict", anchor=False)
    st.write("Drop one or more photos: Sprout labels each one with the current model. If an answer looks "
             "wrong, send the image for review. Approved images train the next model.")
    model_caption()
    uploads = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True,
                               help="JPEG, PNG, WebP, TIFF, BMP or GIF.") or []
    current = {upload.file_id for upload in uploads}
    for key in (state.PREDICTIONS, state.SUBMISSIONS):  # forget removed uploads
        for file_id in set(st.session_state[key]) - current:
            del st.session_state[key][file_id]
    answers = {upload.file_id: prediction_for(upload) for upload in uploads}
    if uploads:
        results_table(uploads, answers)
    for index, upload in enumerate(uploads):
        result_card(index, upload, answers[upload.file_id])


predict_page()
