"""A reviewer's long session in headless Chromium, against the real API and Streamlit: past the first page of the
queue, one sample decided with the keyboard alone, undone, and a reload that keeps the order, mode and page."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Screenshot
from tests.e2e.test_browser import log_in, settle
from tests.utils.live_api import LiveApi, unused_photo

pytestmark = pytest.mark.slow  # the live API trains a model first
expect.set_options(timeout=30_000)


def focused_card_id(page: Page) -> int:
    """The id of the card that carries the 'in focus' badge."""
    header = page.locator('[class*="st-key-sample-"]').filter(has_text="in focus").first
    key = next(c for c in (header.get_attribute("class") or "").split() if c.startswith("st-key-sample-"))
    return int(key.removeprefix("st-key-sample-"))


def submit_new(live_api: LiveApi, count: int) -> list[int]:
    """``count`` new pending samples from photos no other test sends (the data sets hold a few exact duplicates:
    those are skipped)."""
    ids: list[int] = []
    for index in range(80, 140):
        for label in ("dandelion", "grass"):
            resp = httpx.post(f"{live_api.url}/samples", timeout=60, files={
                "file": (f"k{index}.jpg", unused_photo(label, index).read_bytes(), "image/jpeg")})
            assert resp.status_code in (200, 201), resp.text
            if resp.status_code == 201 and len(ids) < count:
                ids.append(resp.json()["id"])
        if len(ids) >= count:
            return ids
    raise AssertionError(f"only {len(ids)} new photos")


def test_a_reviewer_decides_on_page_two_by_keyboard_undoes_it_and_a_reload_keeps_the_place(
        page: Page, streamlit_url: str, live_api: LiveApi, screenshot: Screenshot) -> None:
    mine = submit_new(live_api, 12)
    try:
        page.set_viewport_size({"width": 1280, "height": 1000})
        log_in(page, f"{streamlit_url}/review", live_api.username, live_api.password)
        page.get_by_text("Oldest", exact=True).click()
        settle(page)
        pending = len(live_api.samples("pending"))
        assert pending > 10, pending
        expect(page.get_by_text(re.compile(r"^Page 1 of \d+: samples 1–10 of \d+"))).to_be_visible()
        expect(page.get_by_text("approve the card in focus as predicted", exact=False)).to_be_visible()  # legend

        page.get_by_role("heading", name="Pending samples").click()  # the keys go to the page, not to a field
        page.keyboard.press("n")  # next page
        expect(page.get_by_text(re.compile(r"^Page 2 of \d+: samples 11–"))).to_be_visible()
        settle(page)
        assert "page=2" in page.url and "order=oldest" in page.url and "mode=cards" in page.url
        first = focused_card_id(page)
        page.keyboard.press("j")  # the next card takes the focus
        settle(page)
        target = focused_card_id(page)
        assert target != first
        screenshot("1-page-two-focus")

        page.keyboard.press("x")  # reject the card in focus
        notice = page.locator(f".st-key-decided-{target}")
        expect(notice.get_by_text(f"Rejected sample #{target}.")).to_be_visible()
        expect(page.locator(f".st-key-sample-{target}")).to_have_count(0)
        settle(page)
        screenshot("2-decided-in-place")
        assert target in {s["id"] for s in live_api.samples("rejected")}

        page.keyboard.press("u")  # undo
        expect(page.get_by_text(f"Undone: sample #{target} waits for review again.")).to_be_visible()
        settle(page)
        assert target in {s["id"] for s in live_api.samples("pending")}
        recent = httpx.get(f"{live_api.url}/admin/reviews/recent", headers=live_api.headers(), timeout=30).json()
        audit = {r["sample_id"]: r for r in recent["reviews"]}
        assert audit[target]["action"] == "reject" and audit[target]["undoable"] is False
        screenshot("3-undone")

        page.reload()
        expect(page.get_by_role("heading", name="Pending samples")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Page 2 of \d+: samples 11–"))).to_be_visible()
        assert "page=2" in page.url and "order=oldest" in page.url and "mode=cards" in page.url
        expect(page.get_by_text(re.compile(r"^\d+ pending samples, oldest first\.$"))).to_be_visible()  # the order
        settle(page)
        screenshot("4-reloaded")
    finally:
        live_api.reject(*(s["id"] for s in live_api.samples("pending") if s["id"] in mine))
