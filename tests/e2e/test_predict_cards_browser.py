"""A visitor drops a corrupt JPEG between two good photos: the real Streamlit app in headless Chromium, talking
to the real API. The good photos keep their results; only the corrupt one's card says what went wrong."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Screenshot
from tests.e2e.test_browser import settle
from tests.utils.live_api import unused_photo

pytestmark = pytest.mark.slow  # the live API trains a model first
expect.set_options(timeout=30_000)
CORRUPT_JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8  # JPEG markers, then noise: not an image
SHOT = Path("/tmp/predict_cards.png")


def test_a_corrupt_jpeg_among_good_ones_errs_in_its_card_only(page: Page, streamlit_url: str,
                                                              screenshot: Screenshot) -> None:
    page.set_viewport_size({"width": 1280, "height": 2600})  # Streamlit scrolls inside: the shot sees the viewport
    page.goto(streamlit_url)
    expect(page.get_by_text("Answers come from model version")).to_be_visible()
    page.locator("input[type=file]").set_input_files([
        {"name": "grass.jpg", "mimeType": "image/jpeg", "buffer": unused_photo("grass", 62).read_bytes()},
        {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": CORRUPT_JPEG},
        {"name": "dandelion.jpg", "mimeType": "image/jpeg", "buffer": unused_photo("dandelion", 62).read_bytes()},
    ])
    good, broken, other = (page.locator(f".st-key-prediction-{i}") for i in range(3))
    for card in (good, other):
        expect(card.locator('[data-testid="stMetricValue"]')).to_have_count(2, timeout=60_000)
    settle(page)
    assert good.locator('[data-testid="stMetricValue"]').first.inner_text() in {"dandelion", "grass"}
    assert other.locator('[data-testid="stMetricValue"]').first.inner_text() in {"dandelion", "grass"}
    for card in (good, other):
        expect(card.get_by_role("img").first).to_be_visible()
        expect(card.locator('[data-testid="stAlertContentError"]')).to_have_count(0)
    expect(broken.get_by_text("broken.jpg: This file is not an image Sprout can read.")).to_be_visible()
    expect(broken.locator('[data-testid="stMetricValue"]')).to_have_count(0)
    expect(broken.get_by_role("button", name="Try again")).to_be_visible()
    expect(page.get_by_text("This app has encountered an error")).to_have_count(0)
    # the results table: one checkbox per image, the refusal in the broken row
    table = page.locator(".st-key-predict-results")
    expect(table.get_by_role("checkbox")).to_have_count(3)
    expect(table.get_by_text(re.compile("grass.jpg|dandelion.jpg|broken.jpg"))).to_have_count(3)
    shutil.copy(screenshot("cards"), SHOT)
