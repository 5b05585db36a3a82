"""A task pod runs exactly the CLI arguments the local runner runs: a DAG parameter with quotes, `;`, `$(...)`,
backticks or `{{` reaches `sprout` as the same one argument, never as shell code or a template.

Each pod's command (as the DAGs build it, a mapped pod's per map index) runs here under a real ``sh``, with a
stand-in ``sprout`` on PATH that answers its own argv and the XCom folder moved into the test's directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dags.dag_runs import Driver

XCOM_DIR = "/airflow/xcom"
INJECTED = "PWNED"  # what the hostile values would create if a shell ran them
HOSTILE = {
    "source": f"s3://data/a \"b\" 'c'; touch {INJECTED}; echo $(touch {INJECTED}) `touch {INJECTED}` {{{{ 7 * 7 }}}}",
    "output": f"/scored/'x' {{{{ run_id }}}} $(touch {INJECTED})/\"y\";touch {INJECTED} #",
    "force": False,  # the empty FORCE_FLAG is left out under both runners
}
CLI_TASKS = {"sprout_retrain": {"count_new_samples", "assess_candidate", "train_candidate", "promote_candidate",
                                "record_rejection"},
             "sprout_bootstrap": {"import_dataset", "read_status", "train_candidate", "promote_candidate",
                                  "record_rejection"},
             "sprout_batch_predict": {"plan_shards", "score_shard", "merge_report"}}
# Where each hostile value must arrive, whole: (DAG id, task id) → the values among its CLI arguments.
CARRIES = {("sprout_bootstrap", "import_dataset"): {"source"}, ("sprout_batch_predict", "plan_shards"): {"source"},
           ("sprout_batch_predict", "score_shard"): {"source", "output"},
           ("sprout_batch_predict", "merge_report"): {"output"}}


@pytest.fixture(scope="module")
def parsed(driver: Driver) -> tuple[dict[str, Any], dict[str, Any]]:
    """The DAGs rendered with the hostile parameters: the local runner's, then the Kubernetes runner's."""
    params = json.dumps(HOSTILE)
    return driver("structure", params), driver("structure", params, env={"SPROUT_TASK_RUNNER": "kubernetes"})


def arg_lists(info: dict[str, Any]) -> list[list[str]]:
    """A task's CLI argument lists: one per map index of a mapped task, else one."""
    if "mapped" in info or "pod" not in info:  # a mapped task, or the local CLI task (its op_args: [ARGS])
        return info["rendered"]
    return [info["rendered"]]  # a pod's arguments


@pytest.fixture
def stand_in(tmp_path: Path) -> dict[str, str]:
    """PATH with a `sprout` that prints its arguments as the one JSON answer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sprout = bin_dir / "sprout"
    sprout.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    sprout.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}


def run_pod(cmds: list[str], args: list[str], workdir: Path, env: dict[str, str]) -> list[str] | str:
    """Run a pod's container command (its XCom folder inside ``workdir``): the argv `sprout` answered, or what
    the shell said when it failed."""
    answer = workdir / "xcom" / "return.json"
    answer.unlink(missing_ok=True)
    command = [c.replace(XCOM_DIR, str(answer.parent)) for c in [*cmds, *args]]
    proc = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=30)
    return json.loads(answer.read_text()) if proc.returncode == 0 and answer.is_file() else proc.stderr


def test_each_pod_gets_exactly_the_local_runners_arguments(
    parsed: tuple[dict[str, Any], dict[str, Any]], stand_in: dict[str, str], tmp_path: Path,
) -> None:
    local, kubernetes = parsed
    assert local["import_errors"] == {} and kubernetes["import_errors"] == {}
    for dag_id, task_ids in CLI_TASKS.items():
        for task_id in task_ids:
            where = f"{dag_id}.{task_id}"
            expected = arg_lists(local["dags"][dag_id]["tasks"][task_id])
            pod = kubernetes["dags"][dag_id]["tasks"][task_id]
            cmds = pod["pod"]["cmds"]
            assert cmds[:2] == ["sh", "-c"] and not any(HOSTILE[k] in c for c in cmds for k in ("source", "output"))
            for key in CARRIES.get((dag_id, task_id), ()):
                assert all(HOSTILE[key] in args for args in expected), f"{where}: {key} not one whole argument"
            got = [run_pod(cmds, args, tmp_path, stand_in) for args in arg_lists(pod)]
            assert not list(tmp_path.rglob(INJECTED)), f"{where}: a shell ran a parameter"
            assert got == [["--json", *(a for a in args if a)] for args in expected], where
