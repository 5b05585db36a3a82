"""More than two labels through the API: /admin/stats reports each label's share and the under-represented one;
/models gives each version's per-class metrics and confusion matrix."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model.core.accounts import create_user
from model.core.settings import Settings
from model.data.importer import import_directory
from tests.api.conftest import PASSWORD, REVIEWER, make_client
from tests.utils.datasets import scenes_tree
from tests.utils.services import migrated_services


def test_stats_give_each_labels_share_per_split_and_warn_of_an_under_represented_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    tree = scenes_tree(tmp_path / "tree", {"buildings": 14, "forest": 12, "sea": 4})  # sea: 4 < 0.5 * 30 / 3
    svc = migrated_services(Settings(home=home))
    with svc.session() as session:
        import_directory(session, svc.store, tree)
        create_user(session, username=REVIEWER, password=PASSWORD)
    svc.close()
    with make_client(monkeypatch, home) as client:  # no model yet: the stats need none
        token = client.post("/auth/token", data={"username": REVIEWER, "password": PASSWORD}).json()["access_token"]
        stats = client.get("/admin/stats", headers={"Authorization": f"Bearer {token}"}).json()
    balance = stats["class_balance"]
    assert [(c["label"], c["count"]) for c in balance["classes"]] == [("buildings", 14), ("forest", 12), ("sea", 4)]
    assert sum(c["share"] for c in balance["classes"]) == pytest.approx(1.0)
    for share in balance["classes"]:
        assert set(share["split_counts"]) == set(share["split_shares"]) == {"train", "val", "test"}
        assert sum(share["split_counts"].values()) == share["count"] == stats["labels"][share["label"]]
    for split in ("train", "val", "test"):
        in_split = [c["split_shares"][split] for c in balance["classes"]]
        assert sum(in_split) == pytest.approx(1.0) or sum(in_split) == 0
    assert balance["min_count"] == pytest.approx(5.0)
    assert [c["label"] for c in balance["classes"] if c["under_represented"]] == ["sea"]
    [warning] = balance["warnings"]
    assert warning.startswith("Label 'sea' is under-represented: 4 approved samples")


def test_models_give_each_versions_per_class_metrics_and_confusion_matrix(client: TestClient) -> None:
    models = client.get("/models").json()
    [version] = [v for v in models["versions"] if v["version"] == "1"]
    metrics = version["metrics"]
    assert set(metrics["per_class"]) == {"dandelion", "grass"}
    for values in metrics["per_class"].values():
        assert set(values) == {"precision", "recall", "f1", "support"} and 0 <= values["f1"] <= 1
    confusion = metrics["confusion_matrix"]
    assert confusion["labels"] == ["dandelion", "grass"] and len(confusion["matrix"]) == 2
    supports = [v["support"] for v in metrics["per_class"].values()]
    assert sum(map(sum, confusion["matrix"])) == metrics["n"] == sum(supports)
    assert [sum(row) for row in confusion["matrix"]] == [metrics["per_class"][label]["support"]
                                                         for label in confusion["labels"]]
    [run] = [r for r in models["runs"] if r["id"] == version["run_id"]]
    assert run["metrics"] == metrics  # the version's metrics are its run's test metrics
