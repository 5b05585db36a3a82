"""The Models page's Rollout section under ``AppTest`` against the real API, on six scene labels: a visitor sees the
challenger, its live comparison in the API's words, the rule's decision and a few numbers; an admin aborts through
the dialog (Cancel changes nothing; a rollout decided meanwhile gets the API's sentence), starts a rollout and
promotes it through the dialog; the champion's header then names who promoted it — the admin, or the rollout rule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.streamlit_app.test_pages import MakeApp, button, log_in, metric, ok, texts
from tests.utils.datasets import scenes_tree
from tests.utils.live_api import ADMIN, LiveApi, add_reviewer, serve, sprout
from tests.utils.markers import needs
from tests.utils.paths import SCENES

pytestmark = pytest.mark.slow  # the home trains two versions first
PER_LABEL = 12
LABELS = ["buildings", "forest", "glacier", "mountain", "sea", "street"]
FAST = {"SPROUT_MODEL_POLL_SECONDS": "0.5", "SPROUT_PREDICTIONS_PER_MINUTE": "100000"}


def rollout_home(root: Path) -> Path:
    """``root/home`` on six scene labels: version 1 the champion; version 2, trained with SPROUT_ROLLOUT=shadow on
    the same photos, the challenger of an open rollout started by its run; a reviewer and an admin."""
    home = root / "home"
    add_reviewer(home)
    sprout(home, "import", str(scenes_tree(root / "tree", dict.fromkeys(LABELS, PER_LABEL))))
    assert sprout(home, "train", "--force", "--backbone", "efficientnet_lite0")["version"] == "1"
    trained = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0", env={"SPROUT_ROLLOUT": "shadow"})
    assert trained["gate"]["passed"] and not trained["promoted"], trained
    return home


@pytest.fixture(scope="module")
@needs("server")
def rollout_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The API serving ``rollout_home``'s champion and challenger."""
    with serve(rollout_home(tmp_path_factory.mktemp("rollout-page")), env=FAST) as running:
        yield running


def unseen(start: int, count: int) -> list[bytes]:
    """``count`` scene photos per label that no version trained on (after the first ``PER_LABEL + start``)."""
    return [path.read_bytes() for label in LABELS
            for path in sorted((SCENES / label).glob("*.jpg"))[PER_LABEL + start:PER_LABEL + start + count]]


def shadow(api: LiveApi, images: list[bytes]) -> dict[str, Any]:
    """Send ``images`` to /predict and wait until the open rollout counts them all (``sprout rollout status``)."""
    before = sprout(api.home, "rollout", "status")["rollouts"][0]["evidence"]["shadowed"]
    with httpx.Client(timeout=60) as http:
        for data in images:
            assert http.post(f"{api.url}/predict", files={"file": ("x.jpg", data, "image/jpeg")}).status_code == 200
    deadline = time.monotonic() + 60
    while True:
        current = sprout(api.home, "rollout", "status")["rollouts"][0]
        if current["evidence"]["shadowed"] >= before + len(images) or time.monotonic() > deadline:
            return current
        time.sleep(1)


def public_rollouts(api: LiveApi, *, shadowed: int, timeout: float = 30) -> dict[str, Any]:
    """``GET /rollouts`` once its cached comparison (10 s) counts ``shadowed`` requests."""
    deadline = time.monotonic() + timeout
    while True:
        answer = api.get("/rollouts")
        if answer["rollouts"][0]["evidence"]["shadowed"] >= shadowed or time.monotonic() > deadline:
            return answer
        time.sleep(1)


def models_page(at: AppTest) -> AppTest:
    return ok(at.switch_page("views/models.py").run())


def dialog_open(at: AppTest) -> bool:
    return any(b.key == "rollout-confirm" for b in at.button)


def ended(at: AppTest) -> list[dict[str, Any]]:
    frame = next(d.value for d in at.dataframe if "decided by" in d.value.columns)
    return list(frame.to_dict("records"))


def test_a_visitor_sees_the_challenger_its_live_comparison_and_the_rules_decision(
        app: MakeApp, rollout_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api = rollout_api
    monkeypatch.setenv("SPROUT_API_URL", api.url)
    images = unseen(0, 1)  # one photo of each of the six labels
    shadow(api, images)
    rollout = public_rollouts(api, shadowed=len(images))["rollouts"][0]
    assert rollout["open"] and rollout["challenger"] == "2"

    at = models_page(ok(app().run()))
    assert "Rollout" in texts(at.subheader)
    said = texts(at.markdown)
    headline = next(m for m in said if m.startswith("**v2 is the challenger in shadow (started by run "))
    assert "), against the champion v1.** In shadow the champion answers every request" in headline, headline
    assert rollout["summary"] in said  # the live comparison, as the API words it
    assert rollout["summary"].startswith("No reviewed live image yet. Agreement ")
    assert f"over {len(images)} shadowed requests" in rollout["summary"]
    [rule] = [i for i in texts(at.info) if i.startswith("**The rule:**")]
    assert rule.startswith(f"**The rule:** Waiting: 0 of 30 reviewed live images; or {len(images)} of 500 distinct "
                           "shadowed images and "), rule
    assert metric(at, "Compared requests") == [str(len(images))]
    assert metric(at, "Reviewed pairs") == ["0"] and metric(at, "Challenger errors") == ["0"]
    assert metric(at, "Agreement")[0].endswith("%")
    assert metric(at, "Champion p99")[0].endswith(" ms") and metric(at, "Challenger p99")[0].endswith(" ms")
    assert not [b for b in at.button if (b.key or "").startswith("rollout-")]  # no admin controls for a visitor
    assert not [d for d in at.dataframe if "decided by" in d.value.columns]  # nothing ended yet
    assert any(c.startswith("Run ") and c.endswith("registered v2 later: it is the challenger now, tried on live "
                                                   "traffic (Rollout).") for c in texts(at.caption)), texts(at.caption)


def test_an_admin_aborts_starts_and_promotes_through_the_dialogs(
        app: MakeApp, rollout_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api = rollout_api
    monkeypatch.setenv("SPROUT_API_URL", api.url)
    at = models_page(log_in(app(), api.admin_username, api.admin_password))
    assert metric(at, "Champion") == ["v1"]

    # Cancel changes nothing
    ok(button(at, "Abort the rollout…").click().run())
    assert dialog_open(at)
    [consequence] = [i for i in texts(at.info) if "overrides the rollout rule" in i]
    assert consequence == ("v2 is discarded and v1 stays the champion. This overrides the rollout rule and is "
                           f"recorded as your decision ({api.admin_username}, now), with the reason below.")
    ok(at.button(key="rollout-cancel").click().run())
    assert not dialog_open(at)
    assert api.get("/rollouts")["rollouts"][0]["open"] and api.get("/models")["challenger"] == "2"

    ok(button(at, "Abort the rollout…").click().run())
    at.text_input(key="rollout-reason").input("tried by hand")
    ok(at.button(key="rollout-confirm").click().run())
    assert texts(at.success) == ["The rollout of v2 was aborted: the champion stays."]
    assert not dialog_open(at)
    latest = api.get("/rollouts")["rollouts"][0]
    assert (latest["open"], latest["outcome"], latest["decided_by"], latest["reason"]) == (
        False, "aborted", api.admin_username, "tried by hand")
    row = ended(at)[0]
    assert (row["challenger"], row["outcome"], row["decided by"], row["reason"]) == (
        "v2", "aborted", f"{api.admin_username} (an admin, overriding the rule)", "tried by hand")
    assert "No rollout is open: the champion answers alone." in " ".join(texts(at.caption))
    assert any(c.startswith("Run ") and c.endswith("registered v2 later as the challenger of a rollout (see Rollout); "
                                                   "v1 is the champion.") for c in texts(at.caption)), texts(at.caption)

    # start: any version but the champion, shadow or canary
    assert at.selectbox(key="rollout-version").options == ["v2"]
    ok(button(at, "Start a rollout of v2…").click().run())
    [start] = [i for i in texts(at.info) if i.startswith("v2 becomes the challenger")]
    assert "beside the champion v1. In shadow the champion answers every request" in start, start
    ok(at.button(key="rollout-confirm").click().run())
    assert texts(at.success) == ["v2 is the challenger in shadow now."]
    assert api.get("/models")["challenger"] == "2"

    # decided meanwhile elsewhere: the dialog shows the API's sentence, and Cancel closes it
    ok(button(at, "Promote the challenger now…").click().run())
    elsewhere = httpx.post(f"{api.url}/admin/rollouts/current/abort", json={"reason": "elsewhere"},
                           headers=api.headers(admin=True), timeout=30)
    assert elsewhere.status_code == 200, elsewhere.text
    ok(at.button(key="rollout-confirm").click().run())
    assert any(e.endswith("was decided meanwhile: nothing was done.") for e in texts(at.error)), texts(at.error)
    assert dialog_open(at) and api.get("/models")["champion"] == "1"
    ok(at.button(key="rollout-cancel").click().run())
    assert not dialog_open(at)

    ok(at.radio(key="rollout-mode").set_value("canary").run())
    ok(button(at, "Start a rollout of v2…").click().run())
    assert any("In canary the challenger answers a share of the clients" in i for i in texts(at.info))
    ok(at.button(key="rollout-confirm").click().run())
    assert texts(at.success) == ["v2 is the challenger in canary now."]
    assert any(m.startswith(f"**v2 is the challenger in canary (started by {api.admin_username}, ")
               for m in texts(at.markdown)), texts(at.markdown)

    # promote: the API serves it at once, recorded under the admin's name
    ok(button(at, "Promote the challenger now…").click().run())
    assert any(i.startswith("The API serves v2 for every prediction from now on (within seconds). This overrides "
                            "the rollout rule") for i in texts(at.info)), texts(at.info)
    ok(at.button(key="rollout-confirm").click().run())
    assert texts(at.success) == ["v2 was promoted: it is the champion now."]
    assert metric(at, "Champion") == ["v2"]
    models = api.get("/models")
    assert (models["champion"], models["challenger"]) == ("2", None)
    assert (models["changes"][0]["kind"], models["changes"][0]["changed_by"]) == ("rollout", api.admin_username)
    assert any(c.startswith(f"Promoted from its rollout by {api.admin_username} on ")
               and c.endswith("(was v1), overriding the rollout rule.") for c in texts(at.caption)), texts(at.caption)
    assert [(r["outcome"], r["reason"]) for r in ended(at)[:3]] == [
        ("promoted", f"promoted by {api.admin_username}, overriding the rule"), ("aborted", "elsewhere"),
        ("aborted", "tried by hand")]


def test_the_header_says_the_rollout_rule_promoted_the_champion(
        app: MakeApp, rollout_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api = rollout_api
    monkeypatch.setenv("SPROUT_API_URL", api.url)
    models = api.get("/models")
    if models["challenger"] is not None:  # the test before did not finish: end its rollout
        sprout(api.home, "rollout", "abort", "--by", ADMIN)
    old = models["champion"]
    other = "1" if old == "2" else "2"
    sprout(api.home, "rollout", "start", other, "--by", ADMIN)
    images = unseen(1, 1)
    assert shadow(api, images)["evidence"]["shadowed"] >= len(images)
    traffic = {"SPROUT_ROLLOUT_MIN_SHADOWED": str(len(images)), "SPROUT_ROLLOUT_MIN_MINUTES": "0"}
    waited = sprout(api.home, "rollout", "judge", env=traffic)  # a person's pick: traffic alone never promotes it
    assert waited["open"] and "only reviewed live images promote it" in waited["decision"]["reason"], waited
    sample = api.submit(images[0], label=LABELS[0], headers=api.headers())  # a reviewer approves one of them
    approved = httpx.post(f"{api.url}/admin/samples/{sample['id']}/review",
                          json={"action": "approve", "label": LABELS[0]}, headers=api.headers(), timeout=30)
    assert approved.status_code == 200, approved.text
    judged = sprout(api.home, "rollout", "judge", env=traffic | {"SPROUT_ROLLOUT_MIN_REVIEWED": "1"})
    assert (judged["outcome"], judged["decided_by"]) == ("promoted", "rule"), judged
    deadline = time.monotonic() + 30  # GET /rollouts recomputes its answer every 10 s
    while api.get("/rollouts")["rollouts"][0]["id"] != judged["id"] and time.monotonic() < deadline:
        time.sleep(1)

    at = models_page(ok(app().run()))
    assert metric(at, "Champion") == [f"v{other}"]
    assert any(c.startswith("Promoted by the rollout rule on ") and f"(was v{old}): as good as the champion on live "
               "traffic" in c for c in texts(at.caption)), texts(at.caption)
    row = ended(at)[0]
    assert (row["challenger"], row["outcome"], row["decided by"]) == (f"v{other}", "promoted", "the rollout rule")
    assert row["reason"].startswith("Promote: enough live evidence (")


def test_the_start_control_is_for_admins_only_and_offers_no_champion(
        app: MakeApp, rollout_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api = rollout_api
    monkeypatch.setenv("SPROUT_API_URL", api.url)
    champion = api.get("/models")["champion"]
    at = models_page(log_in(app(), api.username, api.password))  # a reviewer, not an admin
    assert "Rollout" in texts(at.subheader)  # rollouts happened: the history is public
    assert not [b for b in at.button if (b.key or "").startswith("rollout-")]
    at = models_page(log_in(app(), api.admin_username, api.admin_password))
    assert f"v{champion}" not in at.selectbox(key="rollout-version").options
