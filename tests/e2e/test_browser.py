"""A person in a browser: the real Streamlit app in headless Chromium, talking to the real API."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.utils.live_api import LiveApi, unused_photo

pytestmark = pytest.mark.slow  # the live API trains a model first
# Two shared cores under a whole test suite: a first Streamlit render can take well over the default 5 s.
expect.set_options(timeout=30_000)
Screenshot = Callable[[str], Path]


def settle(page: Page) -> None:
    """Wait until the script run triggered by the last action has finished."""
    page.wait_for_timeout(200)
    page.locator('[data-test-script-state="notRunning"]').wait_for()


def test_visitor_drops_an_image_sees_its_label_and_sends_it_for_review(page: Page, streamlit_url: str,
                                                                      live_api: LiveApi,
                                                                      screenshot: Screenshot) -> None:
    page.goto(streamlit_url)
    expect(page.get_by_role("heading", name="Predict")).to_be_visible()
    expect(page.get_by_text("Answers come from model version")).to_be_visible()
    screenshot("1-empty")

    page.locator("input[type=file]").set_input_files(str(unused_photo("dandelion", 3)))
    card = page.locator(".st-key-prediction-0")
    values = card.locator('[data-testid="stMetricValue"]')
    expect(values).to_have_count(2, timeout=60_000)
    settle(page)
    label, confidence = values.all_inner_texts()
    assert label in {"dandelion", "grass"}
    assert re.fullmatch(r"\d{1,3}\.\d%", confidence), confidence
    expect(card.get_by_role("img").first).to_be_visible()
    screenshot("2-predicted")

    # Not sure? Send it for review with a label typed in (the selectbox accepts new options).
    suggestion = card.get_by_role("combobox")
    suggestion.click()
    suggestion.fill("clover")
    suggestion.press("Enter")
    card.get_by_role("button", name="Send for review").click()
    message = card.get_by_text(re.compile(r"Sent for review as sample #\d+"))
    expect(message).to_be_visible()
    settle(page)
    screenshot("3-sent")
    sample_id = int(re.search(r"#(\d+)", message.inner_text()).group(1))
    sent = {s["id"]: s for s in live_api.samples("pending")}
    assert sent[sample_id]["suggested_label"] == "clover"


def test_reviewer_logs_in_and_approves_a_pending_sample(page: Page, streamlit_url: str, live_api: LiveApi,
                                                        screenshot: Screenshot) -> None:
    sample = live_api.submit(unused_photo("grass", 3).read_bytes(), name="lawn.jpg", label="grass")
    assert sample["status"] == "pending"

    page.goto(f"{streamlit_url}/review")  # logged out: the login form, under the URL asked for
    expect(page.get_by_text("Log in to open the review queue.")).to_be_visible()
    page.get_by_role("textbox", name="User name").fill(live_api.username)
    page.get_by_role("textbox", name="Password").fill(live_api.password)
    screenshot("1-login")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+ of \d+ new samples approved since the last training"))).to_be_visible()
    card = page.locator(f".st-key-sample-{sample['id']}")
    expect(card).to_be_visible()
    expect(card.get_by_text("The submitter suggests")).to_be_visible()
    settle(page)
    screenshot("2-queue")

    card.get_by_role("button", name=re.compile(r"^Approve")).first.click()
    expect(page.get_by_text(f"Approved sample #{sample['id']} as")).to_be_visible()
    expect(page.locator(f".st-key-sample-{sample['id']}")).to_have_count(0)
    settle(page)
    screenshot("3-approved")

    approved = {s["id"]: s for s in live_api.samples("approved")}
    assert sample["id"] in approved
    assert approved[sample["id"]]["label"] == sample["predicted_label"]
    assert approved[sample["id"]]["reviewed_by"] == live_api.username

    # Still logged in on the Models page (sidebar navigation keeps the session): the promote control is there.
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Versions")).to_be_visible()
    expect(page.get_by_role("heading", name="Change the champion")).to_be_visible()
    settle(page)
    screenshot("4-models")
