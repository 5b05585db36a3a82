"""Predict: drop images, see each one's label, confidence and probabilities, and whether the model is not sure or
has never seen anything like the image; send any of them for review."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from streamlit_app import client, state, ui
from streamlit_app.charts import top_and_other
from streamlit_app.client import ApiError

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
    """The API's answer for this upload, asked once: reruns reuse it, so one upload is one predict event."""
    answers: dict[str, dict[str, Any]] = st.session_state[state.PREDICTIONS]
    if upload.file_id not in answers:
        try:
            with st.spinner(f"Classifying {upload.name}…"):
                answers[upload.file_id] = {"result": client.predict(upload.name, upload.getvalue(), upload.type)}
        except ApiError as err:
            answers[upload.file_id] = {"error": err.detail, "status": err.status}
        client.send_event("predict", "predict_click")
    return answers[upload.file_id]


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
    before, a note without one) instead of the form."""
    sent: dict[str, dict[str, Any]] = st.session_state[state.SUBMISSIONS]
    if upload.file_id in sent:
        sample = sent[upload.file_id]
        if sample["created"]:
            suggested = f" with your label **{sample['label']}**" if sample["label"] else ""
            st.success(f"Sent for review as sample **#{sample['id']}**{suggested}. Thank you!",
                       icon=":material/task_alt:")
        else:
            # the API names no existing sample to an anonymous sender (its status would reveal training-set membership)
            st.info("This image was already submitted: it is not stored twice.", icon=":material/content_copy:")
        return
    with st.form(f"send-{upload.file_id}", border=False):
        label = st.selectbox("Suggested label (optional)", labels, index=None, accept_new_options=True,
                             placeholder="Choose or type the right label",
                             help="What the image really shows, if you know. A reviewer decides.")
        if not st.form_submit_button("Send for review", icon=":material/outbox:"):
            return
    try:
        sample, created = client.submit_sample(upload.name, upload.getvalue(), upload.type,
                                               label=(label or "").strip() or None)
    except ApiError as err:
        ui.show_error(err)
        return
    sent[upload.file_id] = {"id": sample["id"], "status": sample["status"], "created": created,
                            "label": sample.get("suggested_label")}
    st.rerun()


def result_card(index: int, upload: UploadedFile) -> None:
    answer = prediction_for(upload)
    with st.container(border=True, key=f"prediction-{index}"):
        picture, details = st.columns([2, 3], gap="large")
        picture.image(upload.getvalue(), caption=upload.name, width="stretch")
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
    for index, upload in enumerate(uploads):
        result_card(index, upload)


predict_page()
