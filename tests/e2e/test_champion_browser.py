"""An admin changes the champion in a browser: the real Streamlit app in headless Chromium, talking to the real
API. A rollback goes through the confirmation dialog, the header then says who put the serving model there and
when; a promotion back is confirmed in the dialog too. A home, API and app of its own: changing the champion of the
shared live API would change what the other tests' model predicts."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Screenshot, Stack, api_and_ui
from tests.e2e.test_browser import log_in, settle
from tests.utils.live_api import one_version_home, sprout
from tests.utils.markers import needs

pytestmark = pytest.mark.slow  # the live API trains a model first
expect.set_options(timeout=30_000)
@pytest.fixture(scope="module")
@needs("server")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """dandelion/grass with version 1 trained, the API serving it and the Streamlit app talking to that API."""
    root = tmp_path_factory.mktemp("champion-browser")
    with api_and_ui(one_version_home(root), root) as both:
        yield both


def choose_version(page: Page, version: str) -> None:
    choice = page.locator(".st-key-champion-choice").get_by_role("combobox")
    choice.click()
    page.get_by_role("option", name=re.compile(rf"^v{version}\b")).click()
    settle(page)


def test_an_admin_rolls_back_in_the_dialog_sees_who_and_when_and_promotes_again(
        page: Page, stack: Stack, screenshot: Screenshot) -> None:
    live_api = stack.api
    trained = sprout(live_api.home, "train", "--force", "--backbone", "efficientnet_lite0")  # on the same data
    assert trained["promoted"], trained
    new = trained["version"]
    old = str(int(new) - 1)
    page.set_viewport_size({"width": 1280, "height": 1300})

    log_in(page, f"{stack.ui}/review", live_api.admin_username, live_api.admin_password)
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Change the champion")).to_be_visible()
    settle(page)
    expect(page.get_by_role("heading", name="Compare two versions")).to_be_visible()
    page.get_by_role("heading", name="Compare two versions").scroll_into_view_if_needed()
    screenshot("1-compare")

    # the rollback: the version before the champion is offered first; the dialog says what changes
    rollback = page.get_by_role("button", name=f"Roll back to v{old}…")
    rollback.scroll_into_view_if_needed()
    rollback.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Roll back to v{old}?")).to_be_visible()
    expect(dialog.get_by_text(re.compile(rf"^v{old}: test accuracy .* for v{new} \("))).to_be_visible()
    expect(dialog.get_by_text(f"The API serves v{old} for every prediction from now on")).to_be_visible()
    expect(dialog.get_by_text(f"recorded as your rollback ({live_api.admin_username}, now)")).to_be_visible()
    settle(page)
    screenshot("2-rollback-dialog")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text(f"Version {old} is now the champion (was version {new}).")).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    header = page.get_by_text(re.compile(rf"^Rolled back to v{old} by {live_api.admin_username} on .*\(was v{new}\)"))
    expect(header).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(rf"^Why v{old} serves: run \d+ promoted it"))).to_be_visible()
    settle(page)
    page.get_by_role("heading", name="Models").scroll_into_view_if_needed()
    screenshot("3-rolled-back-header")
    models = live_api.get("/models")
    assert models["champion"] == old
    assert (models["changes"][0]["kind"], models["changes"][0]["changed_by"]) == ("rollback", live_api.admin_username)

    # and forward again: a promotion, confirmed in the dialog
    page.get_by_role("heading", name="Change the champion").scroll_into_view_if_needed()
    choose_version(page, new)
    page.get_by_role("button", name="Make it the champion…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Make v{new} the champion?")).to_be_visible()
    expect(dialog.get_by_text(f"recorded as your promotion ({live_api.admin_username}, now)")).to_be_visible()
    settle(page)
    screenshot("4-promote-dialog")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text(f"Version {new} is now the champion (was version {old}).")).to_be_visible()
    expect(page.get_by_text(re.compile(rf"^Made the champion by {live_api.admin_username} on .*\(was v{old}\)"))
           ).to_be_visible()
    settle(page)
    page.get_by_role("heading", name="Models").scroll_into_view_if_needed()
    screenshot("5-promoted-header")
    models = live_api.get("/models")
    assert models["champion"] == new
    assert (models["changes"][0]["kind"], models["changes"][0]["changed_by"]) == ("promoted", live_api.admin_username)
