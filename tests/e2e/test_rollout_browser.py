"""The Models page's Rollout section in a browser: the real Streamlit app in headless Chromium, talking to the real
API, on six scene labels. A visitor's view of the open rollout — the challenger, the live comparison in words, the
rule's decision, the numbers —, then an admin aborts it through the dialog and the ended rollout is listed. A home,
API and app of its own: a rollout changes what the shared API serves."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Screenshot, Stack, api_and_ui
from tests.e2e.test_browser import log_in, settle
from tests.streamlit_app.test_rollout_section import FAST, public_rollouts, rollout_home, shadow, unseen
from tests.utils.markers import needs

pytestmark = pytest.mark.slow  # the home trains two versions first
expect.set_options(timeout=30_000)
@pytest.fixture(scope="module")
@needs("server")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("rollout-browser")
    with api_and_ui(rollout_home(root), root, env=FAST) as both:
        yield both


def test_the_open_rollout_in_words_and_numbers_and_an_admin_aborts_it_in_the_dialog(
        page: Page, stack: Stack, screenshot: Screenshot) -> None:
    api = stack.api
    images = unseen(0, 2)  # two photos of each of the six labels
    shadow(api, images)
    summary = public_rollouts(api, shadowed=len(images))["rollouts"][0]["summary"]
    page.set_viewport_size({"width": 1280, "height": 1300})

    log_in(page, f"{stack.ui}/review", api.admin_username, api.admin_password)
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Rollout")).to_be_visible()
    headline = page.get_by_text(re.compile(r"^v2 is the challenger in shadow \(started by run \d+, ")).first
    expect(headline).to_be_visible()
    expect(page.get_by_text(summary)).to_be_visible()
    expect(page.get_by_text(re.compile(r"^The rule: Waiting: 0 of 30 reviewed live images"))).to_be_visible()
    settle(page)
    page.get_by_role("heading", name="Rollout").scroll_into_view_if_needed()
    screenshot("1-open-rollout")

    page.get_by_role("button", name="Abort the rollout…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Abort the rollout of v2?")).to_be_visible()
    expect(dialog.get_by_text("v2 is discarded and v1 stays the champion. This overrides the rollout rule")
           ).to_be_visible()
    dialog.get_by_role("textbox", name="Reason (recorded with the decision)").fill("seen enough")
    settle(page)
    screenshot("2-abort-dialog")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("The rollout of v2 was aborted: the champion stays.")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_text("No rollout is open: the champion answers alone.")).to_be_visible()
    expect(page.get_by_role("button", name="Start a rollout of v2…")).to_be_visible()
    settle(page)
    page.get_by_role("heading", name="Rollout").scroll_into_view_if_needed()
    screenshot("3-ended")
    latest = api.get("/rollouts")["rollouts"][0]
    assert (latest["outcome"], latest["decided_by"], latest["reason"]) == ("aborted", api.admin_username, "seen enough")
