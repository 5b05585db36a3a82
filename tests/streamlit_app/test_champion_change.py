"""The Models page under ``AppTest`` against the real API: an admin changes the champion through the confirmation
dialog (Cancel changes nothing, Confirm promotes and is audited), and any two versions are compared side by side —
2 labels, and 6 labels where the newer version knows a label the older one does not."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.streamlit_app.test_pages import MakeApp, button, log_in, metric, ok, texts
from tests.utils.datasets import scenes_tree
from tests.utils.live_api import LiveApi, add_reviewer, one_version_home, serve, sprout
from tests.utils.markers import needs

pytestmark = pytest.mark.slow  # each home trains its versions first
FIVE = ["buildings", "forest", "glacier", "sea", "street"]
NEW_LABEL = "mountain"  # only version 2 knows it


@pytest.fixture(scope="module")
@needs("server")
def six_label_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The real API on a scenes home: version 1 trained on five labels, version 2 (the champion) on six."""
    root = tmp_path_factory.mktemp("six-labels")
    home = root / "home"
    add_reviewer(home)
    sprout(home, "import", str(scenes_tree(root / "five", dict.fromkeys(FIVE, 14))))
    assert sprout(home, "train", "--force", "--backbone", "efficientnet_lite0")["version"] == "1"
    sprout(home, "import", str(scenes_tree(root / "six", {NEW_LABEL: 14})))
    trained = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0")
    assert trained["promoted"] and trained["version"] == "2", trained
    with serve(home) as running:
        yield running


@pytest.fixture(scope="module")
@needs("server")
def own_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The real API on a home of its own (the rollback changes its champion, which the shared API's other tests
    must not see): dandelion/grass with version 1; the test trains version 2 on the same photos."""
    home = one_version_home(tmp_path_factory.mktemp("two-versions"))
    with serve(home) as running:
        yield running


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_six_labels_compare_side_by_side_and_a_label_only_one_version_knows_is_missing(
        app: MakeApp, six_label_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPROUT_API_URL", six_label_api.url)
    at = ok(app().run())
    ok(at.switch_page("views/models.py").run())
    assert "Compare two versions" in texts(at.subheader)
    first, second = at.selectbox(key="compare-a"), at.selectbox(key="compare-b")
    assert (first.value, second.value) == ("2", "1")  # the champion against the newest other version
    summary = table_with(at, "v1 − v2")
    assert list(summary.columns) == ["", "v2", "v1", "v1 − v2"]
    versions = {v["version"]: v for v in six_label_api.get("/models")["versions"]}
    rows = summary.set_index("").to_dict("index")
    assert rows["test images"] == {"v2": f"{versions['2']['metrics']['n']}", "v1": f"{versions['1']['metrics']['n']}",
                                   "v1 − v2": f"{versions['1']['metrics']['n'] - versions['2']['metrics']['n']:+d}"}
    assert rows["training run"] == {"v2": str(versions["2"]["run_id"]), "v1": str(versions["1"]["run_id"]),
                                    "v1 − v2": ""}
    per_label = table_with(at, "known by")
    assert sorted(per_label["label"]) == sorted([*FIVE, NEW_LABEL])
    new = per_label.set_index("label").loc[NEW_LABEL]
    assert new["known by"] == "v2" and new["recall v1"] == "—" and new["precision v1"] == "—"
    assert new["recall Δ"] == "—" and new["test images v1"] == "—"
    street = per_label.set_index("label").loc["street"]
    assert street["known by"] == "both"
    note = next(c for c in texts(at.caption) if c.startswith("Not a paired comparison: v2 and v1"))
    assert "Run 2 did compare them on the same" in note  # the gate's paired comparison, when it exists
    heatmaps = [c.proto.spec for c in at.get("vega_lite_chart") if '"predicted"' in c.proto.spec]
    assert len(heatmaps) == 3  # the champion's under "Per label", then v2's and v1's side by side
    assert NEW_LABEL in heatmaps[1] and NEW_LABEL not in heatmaps[2]  # v2 knows it, v1 does not
    # the other way round: the older version first
    ok(first.set_value("1").run())
    ok(at.selectbox(key="compare-b").set_value("2").run())
    assert list(table_with(at, "v2 − v1").columns) == ["", "v1", "v2", "v2 − v1"]
    new = table_with(at, "known by").set_index("label").loc[NEW_LABEL]
    assert new["known by"] == "v2" and new["recall v1"] == "—" and new["test images v1"] == "—"
    assert new["test images v2"].isdigit()  # a count, perhaps 0: the split decides whether it has test images


def test_an_admin_rolls_back_and_promotes_through_the_dialog_cancel_changes_nothing(
        app: MakeApp, own_api: LiveApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api = own_api
    monkeypatch.setenv("SPROUT_API_URL", api.url)
    trained = sprout(api.home, "train", "--force", "--backbone", "efficientnet_lite0")  # on the same data
    assert trained["promoted"], trained
    new = trained["version"]
    old = str(int(new) - 1)
    changes_before = api.get("/models")["changes"]

    at = log_in(app(), api.admin_username, api.admin_password)
    ok(at.switch_page("views/models.py").run())
    assert metric(at, "Champion") == [f"v{new}"]
    # two labels side by side: the champion against the version before it
    assert (at.selectbox(key="compare-a").value, at.selectbox(key="compare-b").value) == (new, old)
    assert sorted(table_with(at, "known by")["label"]) == ["dandelion", "grass"]
    assert set(table_with(at, "known by")["known by"]) == {"both"}

    choice = at.selectbox(key="champion-choice")
    assert choice.value == old  # the version before the champion is offered first
    assert not [b for b in at.button if b.key == "champion-confirm"]  # no dialog yet
    ok(button(at, f"Roll back to v{old}…").click().run())
    said = texts(at.markdown)
    assert any(m.startswith(f"v{old}: test accuracy ") and f"for v{new} (" in m for m in said), said
    assert any(m.startswith("- dandelion: recall ") and "\n- grass: recall " in m for m in said), said
    assert texts(at.info) == [f"The API serves v{old} for every prediction from now on (within seconds); this is "
                              f"recorded as your rollback ({api.admin_username}, now) and the page says so under "
                              "the champion."]
    ok(at.button(key="champion-cancel").click().run())
    assert not [b for b in at.button if b.key == "champion-confirm"]  # the dialog closed
    assert api.get("/models")["champion"] == new and api.get("/models")["changes"] == changes_before

    ok(button(at, f"Roll back to v{old}…").click().run())
    ok(at.button(key="champion-confirm").click().run())
    assert texts(at.success) == [f"Version {old} is now the champion (was version {new})."]
    assert metric(at, "Champion") == [f"v{old}"]
    models = api.get("/models")
    assert models["champion"] == old
    change = models["changes"][0]
    assert (change["kind"], change["version"], change["previous"], change["changed_by"]) == (
        "rollback", old, new, api.admin_username)
    assert any(c.startswith(f"Rolled back to v{old} by {api.admin_username} on ") and c.endswith(f"(was v{new}).")
               for c in texts(at.caption)), texts(at.caption)
    assert any(h.startswith(f"Why v{old} serves: run ") for h in texts(at.subheader)), texts(at.subheader)
    assert any(c.startswith(f"Version {old} on its ") for c in texts(at.caption))  # per label: the new champion
    assert f"Run {trained['run_id']} registered v{new} later; v{old} is the champion again (a rollback or a " \
        "promotion by an admin)." in texts(at.caption)

    # and forward again: a promotion, confirmed in the dialog
    ok(at.selectbox(key="champion-choice").set_value(new).run())
    ok(button(at, "Make it the champion…").click().run())
    assert "recorded as your promotion" in texts(at.info)[0]
    ok(at.button(key="champion-confirm").click().run())
    models = api.get("/models")
    assert models["champion"] == new
    assert (models["changes"][0]["kind"], models["changes"][0]["changed_by"]) == ("promoted", api.admin_username)
    assert any(c.startswith(f"Made the champion by {api.admin_username} on ") for c in texts(at.caption))
