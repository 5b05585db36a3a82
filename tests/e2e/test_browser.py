"""A person in a browser: the real Streamlit app in headless Chromium, talking to the real API."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from model.core.security import create_access_token
from tests.e2e.conftest import Screenshot
from tests.utils.images import dataset_images, near_copy
from tests.utils.live_api import LiveApi, mislabelled_photos, unused_photo

pytestmark = pytest.mark.slow  # the live API trains a model first
# Two shared cores under a whole test suite: a first Streamlit render can take well over the default 5 s.
expect.set_options(timeout=30_000)


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


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(url)
    expect(page.get_by_text("Log in to open the review queue.")).to_be_visible()
    page.get_by_role("textbox", name="User name").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    settle(page)


def test_reviewer_sees_a_near_duplicate_approves_several_in_the_grid_and_an_admin_relabels_a_suspect(
        page: Page, streamlit_url: str, live_api: LiveApi, screenshot: Screenshot) -> None:
    trained = {s["sha256"]: s for s in live_api.samples("approved")}
    original_path = next(p for p in dataset_images("dandelion", 20) if sha256_of(p) in trained)
    original = trained[sha256_of(original_path)]
    twin = live_api.submit(near_copy(original_path.read_bytes(), crop=0.10, scale=0.8, quality=75), name="again.jpg",
                           headers=live_api.headers())  # a reviewer's receipt names the near-duplicates
    assert twin["near_duplicates"] and twin["near_duplicates"][0]["id"] == original["id"], twin
    batch = [live_api.submit(unused_photo(label, 6 + i).read_bytes(), name=f"b{i}.jpg")
             for i, label in enumerate(("dandelion", "grass", "dandelion"))]

    log_in(page, f"{streamlit_url}/review", live_api.admin_username, live_api.admin_password)
    page.get_by_text("Oldest", exact=True).click()  # the newest uploads come last: show them all
    settle(page)
    card = page.locator(f".st-key-sample-{twin['id']}")
    expect(card.get_by_text(f"Near-duplicate of #{original['id']} (dandelion, approved)")).to_be_visible()
    expect(card.get_by_role("button", name=f"Approve as dandelion, like #{original['id']}")).to_be_visible()
    card.scroll_into_view_if_needed()
    screenshot("1-near-duplicate")

    # The grid: tick three cards, approve them together.
    page.locator(".st-key-review-mode").get_by_role("button", name=re.compile(r"^Grid")).click()  # or the key G
    settle(page)
    for sample in batch:
        cell = page.locator(f".st-key-cell-{sample['id']}")
        cell.get_by_text(f"#{sample['id']} ·").click()
        settle(page)
        expect(cell.get_by_role("checkbox")).to_be_checked()
    approve = page.get_by_role("button", name="Approve 3 selected as predicted")
    expect(approve).to_be_enabled()
    screenshot("2-grid-selected")
    approve.click()
    expect(page.get_by_text("Approved 3 samples.")).to_be_visible()
    settle(page)
    screenshot("3-grid-approved")
    approved = {s["id"]: s for s in live_api.samples("approved")}
    for sample in batch:
        assert approved[sample["id"]]["label"] == sample["predicted_label"]
        assert approved[sample["id"]]["reviewed_by"] == live_api.admin_username

    # Suspect labels: the two grass photos filed as dandelion; the admin relabels one.
    page.get_by_text("Suspect labels", exact=True).click()
    settle(page)
    suspects = {sha256_of(p) for p in mislabelled_photos()}
    issues = httpx.get(f"{live_api.url}/admin/label-issues", headers=live_api.headers(admin=True), timeout=60)
    flagged = [s for s in issues.json()["issues"] if s["sha256"] in suspects]
    assert flagged, "Cleanlab flags a mislabelled photo"
    relabel = page.get_by_role("button", name="Relabel as grass").first
    expect(relabel).to_be_visible()
    screenshot("4-suspects")
    target = flagged[0]
    page.locator(f".st-key-relabel-{target['id']}").get_by_role("button").click()
    expect(page.get_by_text(f"Sample {target['id']} is now grass.")).to_be_visible()
    settle(page)
    screenshot("5-relabelled")
    assert {s["id"]: s for s in live_api.samples("approved")}[target["id"]]["label"] == "grass"



def test_an_admin_renames_a_label_on_the_models_page_after_confirming(page: Page, streamlit_url: str,
                                                                      live_api: LiveApi,
                                                                      screenshot: Screenshot) -> None:
    """Two photos approved under a label of this test's own; the admin renames it on the Models page (the button
    waits for the confirmation); the samples, the audit and the label list follow. Retired at the end, so the
    shared home's labels stay dandelion and grass."""
    admin = live_api.headers(admin=True)
    ids = []
    for label in ("dandelion", "grass"):
        sample = live_api.submit(unused_photo(label, 40).read_bytes(), name=f"{label}.jpg", headers=admin)
        resp = httpx.post(f"{live_api.url}/admin/samples/{sample['id']}/review",
                          json={"action": "approve", "label": "e2e-clover"}, headers=admin, timeout=60)
        assert resp.status_code == 200, resp.text
        ids.append(sample["id"])

    log_in(page, f"{streamlit_url}/review", live_api.admin_username, live_api.admin_password)
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Labels")).to_be_visible()
    settle(page)
    choice = page.locator(".st-key-taxonomy-label").get_by_role("combobox")
    choice.click()
    choice.fill("e2e-clover")
    choice.press("Enter")
    settle(page)
    expect(choice).to_have_value("e2e-clover")
    page.get_by_text("Rename", exact=True).click()
    settle(page)
    page.get_by_role("textbox", name="New name").fill("e2e-trefoil")
    page.get_by_role("textbox", name="New name").press("Enter")
    settle(page)
    apply = page.locator(".st-key-taxonomy-apply").get_by_role("button")
    expect(apply).to_be_disabled()  # nothing is sent before the admin confirms
    page.get_by_text(re.compile(r"Yes, rename 'e2e-clover' → 'e2e-trefoil': its 2 approved samples")).click()
    expect(apply).to_be_enabled()
    screenshot("1-confirmed")
    apply.click()
    expect(page.get_by_text(re.compile(r"Label change #\d+: rename e2e-clover → e2e-trefoil \(2 approved"))
           ).to_be_visible()
    settle(page)
    expect(page.get_by_role("textbox", name="New name")).to_have_value("")  # the next change starts afresh
    screenshot("2-renamed")

    approved = {s["id"]: s for s in live_api.samples("approved")}
    assert [approved[i]["label"] for i in ids] == ["e2e-trefoil", "e2e-trefoil"]
    labels = httpx.get(f"{live_api.url}/admin/labels", headers=admin, timeout=30).json()
    assert "e2e-clover" not in {row["label"] for row in labels["labels"]}
    assert (labels["changes"][0]["kind"], labels["changes"][0]["into"]) == ("rename", "e2e-trefoil")
    assert labels["changes"][0]["changed_by"] == live_api.admin_username
    retired = httpx.post(f"{live_api.url}/admin/labels/e2e-trefoil/retire", headers=admin, timeout=60)
    assert retired.status_code == 200 and retired.json()["approved"] == 2

# --- sessions that survive a reload: the HttpOnly cookie set by the Streamlit server's /session route ---

SESSION_COOKIES = {"sprout-session", "__Host-sprout-session"}


def session_cookie(context: BrowserContext) -> dict[str, Any] | None:
    return next((dict(c) for c in context.cookies() if c["name"] in SESSION_COOKIES), None)


def wait_for_cookie(page: Page, *, present: bool, timeout_s: float = 20) -> dict[str, Any] | None:
    """The session cookie once the page has set it (``present``), or None once the page has cleared it."""
    deadline = time.monotonic() + timeout_s
    while ((found := session_cookie(page.context)) is not None) != present:
        assert time.monotonic() < deadline, f"the session cookie was not {'set' if present else 'cleared'}"
        page.wait_for_timeout(200)
    return found


def expect_logged_out(page: Page) -> None:
    expect(page.get_by_text("Log in to open the review queue.")).to_be_visible()
    expect(page.get_by_text("Logged in as")).to_have_count(0)


def test_a_login_survives_a_reload_until_the_reviewer_logs_out(page: Page, browser: Browser, streamlit_url: str,
                                                               live_api: LiveApi, screenshot: Screenshot) -> None:
    sample = live_api.submit(unused_photo("grass", 11).read_bytes(), name="kept.jpg")
    log_in(page, f"{streamlit_url}/review", live_api.username, live_api.password)
    cookie = wait_for_cookie(page, present=True)
    assert cookie is not None
    token = cookie["value"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # served over plain http (auto mode)
    assert 3500 <= cookie["expires"] - time.time() <= 3600  # the token's lifetime (60 min), a little less
    assert httpx.get(f"{live_api.url}/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    page.reload()
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+ of \d+ new samples approved since the last training"))).to_be_visible()
    expect(page.locator(f".st-key-sample-{sample['id']}")).to_be_visible()  # the queue
    expect(page.get_by_text(f"Logged in as {live_api.username}")).to_be_visible()
    assert token not in page.url
    visible_to_scripts = page.evaluate("document.cookie")
    assert "sprout-session" not in visible_to_scripts and token not in visible_to_scripts
    settle(page)
    screenshot("1-reloaded")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    wait_for_cookie(page, present=False)
    page.goto(f"{streamlit_url}/review")
    expect_logged_out(page)
    page.reload()
    expect_logged_out(page)
    screenshot("2-logged-out")

    # The old cookie logs nobody in: the logout revoked its token at the API.
    assert httpx.get(f"{live_api.url}/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    context = browser.new_context()
    try:
        context.add_cookies([{"name": cookie["name"], "value": token, "url": streamlit_url, "httpOnly": True,
                              "sameSite": "Strict"}])
        replay = context.new_page()
        replay.goto(f"{streamlit_url}/review")
        expect_logged_out(replay)
        wait_for_cookie(replay, present=False)  # the refused cookie is cleared
    finally:
        context.close()


def test_an_expired_session_is_not_restored(page: Page, streamlit_url: str, live_api: LiveApi) -> None:
    key = (live_api.home / "secret_key").read_text().strip()
    expired = create_access_token(subject=live_api.username, key=key, minutes=1,
                                  now=datetime.now(UTC) - timedelta(hours=2))
    page.context.add_cookies([{"name": "sprout-session", "value": expired, "url": streamlit_url, "httpOnly": True,
                               "sameSite": "Strict"}])
    page.goto(f"{streamlit_url}/review")
    expect_logged_out(page)
    wait_for_cookie(page, present=False)


def test_the_session_route_sets_no_cookie_without_a_handoff(streamlit_url: str) -> None:
    url = f"{streamlit_url}/session"
    assert httpx.post(url, json={"handoff": "x"}).status_code == 403  # no X-Sprout-Session header
    cross_site = {"X-Sprout-Session": "1", "Sec-Fetch-Site": "cross-site"}
    assert httpx.post(url, json={"handoff": "x"}, headers=cross_site).status_code == 403
    unknown = httpx.post(url, json={"handoff": "made-up"}, headers={"X-Sprout-Session": "1"})
    assert unknown.status_code == 404 and "set-cookie" not in unknown.headers
    cleared = httpx.delete(url, headers={"X-Sprout-Session": "1"})
    assert cleared.status_code == 204 and "Max-Age=0" in cleared.headers["set-cookie"]
    assert "HttpOnly" in cleared.headers["set-cookie"]
