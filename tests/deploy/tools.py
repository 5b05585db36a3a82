"""Paths and loaders of the deployment files, and the validation tools the tests run.

Every tool is installed by the project (``make install``: the ``dev`` extra, ``npm ci`` in tests/deploy/grafana;
``.ci/run``: Debian's docker-compose). A missing tool fails the test that needs it, with the way to install
it; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.utils.markers import require_marker
from tests.utils.paths import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
DOCKERFILES = {name: DOCKER / f"{name}.Dockerfile" for name in ("api", "streamlit", "trainer", "airflow", "mlflow")}
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE = REPO_ROOT / "docker-compose.yml"
GEN_ENV = REPO_ROOT / "scripts" / "gen-env.sh"
CHART = REPO_ROOT / "helm" / "sprout"
CHART_CI_VALUES = CHART / "ci" / "gpu-external-values.yaml"
AIRFLOW_VALUES = REPO_ROOT / "helm" / "airflow-values.yaml"
DASHBOARDS_DIR = REPO_ROOT / "monitoring" / "grafana" / "dashboards"
GRAFANA_CHECK = Path(__file__).with_name("grafana")
AIRFLOW_PYTHON = REPO_ROOT / ".venv-airflow" / "bin" / "python"
AIRFLOW_PLUGINS = REPO_ROOT / "airflow_plugins"  # Sprout's auth manager, in the images' plugins folder
AUTH_MANAGER = "sprout_auth_manager.SproutAuthManager"
KUBE_VERSION = "1.30.0"

BIN = Path(sys.executable).parent


def require(path: Path | str | None, what: str, how: str) -> str:
    """``path`` if it is an executable file; otherwise the test fails and says how to install it."""
    if path is None or not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{what} not found ({path}): {how}")
    return str(path)


def venv_tool(name: str) -> str:
    return require(BIN / name, name, "pip install -e '.[dev]' (make install)")


def docker_compose() -> str:
    require_marker("root", "docker-compose (a Debian package)")
    return require(shutil.which("docker-compose"), "docker-compose (v1)",
                   "apt-get install -y docker-compose (.ci/run installs it when missing)")


def run(cmd: list[str], *, timeout: float = 120, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        assert proc.returncode == 0, \
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def dashboard_files() -> list[Path]:
    """Every dashboard JSON of monitoring/grafana/dashboards; none there fails the test."""
    files = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert files, f"no Grafana dashboards in {DASHBOARDS_DIR}"
    return files


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(exclude?, pattern) per line of .dockerignore, in order (the last matching line wins)."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        patterns.append((not negated, pattern.strip("/")))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching (Go filepath.Match plus `**`), anchored at the context root."""
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            parts.append(pattern[i:end + 1])
            i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts) + "(?:/.*)?")  # a directory's pattern covers what is inside it


def in_build_context(relpath: str) -> bool:
    """Whether the repository file ``relpath`` is sent to the Docker daemon as build context."""
    included = True
    for exclude, pattern in dockerignore_patterns():
        if _pattern_regex(pattern).fullmatch(relpath):
            included = not exclude
    return included


def build_context_files() -> list[str]:
    """The repository's files (git's view: tracked and untracked, not ignored) that go into the context."""
    proc = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT)
    return [f for f in proc.stdout.splitlines() if (REPO_ROOT / f).exists() and in_build_context(f)]


# --------------------------------------------------------------------------- MinIO's client, stubbed

# A stand-in for MinIO's `mc` that keeps the server's users, policies and attachments in a JSON file and answers
# the commands the minio-init jobs run, as mc does (an error for attaching what is attached or detaching what is
# not). Any other command fails, so a job cannot do something the tests do not look at.
_MC_STUB = r'''
import json, os, sys
state_file = os.environ["MC_STUB_STATE"]
state = json.load(open(state_file))
args = sys.argv[1:]
state["calls"].append(args)
def done(code=0, out=""):
    json.dump(state, open(state_file, "w"))
    if out:
        print(out)
    sys.exit(code)
if args[:2] == ["alias", "set"]:
    done()
if args[:1] == ["mb"]:
    state["buckets"] += [a.split("/", 1)[1] for a in args[1:] if not a.startswith("-")]
    done()
if args[:3] == ["admin", "policy", "create"]:
    _, _, _, _alias, name, path = args
    state["policies"][name] = json.load(open(path))  # not JSON: the stub fails, as MinIO would
    done()
if args[:3] == ["admin", "user", "add"]:
    state["users"].setdefault(args[4], [])
    done()
if args[:3] == ["admin", "policy", "attach"] or args[:3] == ["admin", "policy", "detach"]:
    _, _, verb, _alias, policy, flag, user = args
    assert flag == "--user", args
    attached = state["users"].get(user)
    if attached is None or (policy not in state["policies"] and policy not in ("readwrite", "readonly")):
        done(1)
    if verb == "attach":
        if policy in attached:
            done(1)
        if not os.environ.get("MC_STUB_ATTACH_IGNORED"):
            attached.append(policy)
        done()
    if policy not in attached:
        done(1)
    attached.remove(policy)
    done()
if args[:3] == ["admin", "user", "info"]:
    user = args[4]
    if user not in state["users"]:
        done(1)
    done(0, f"AccessKey: {user}\nStatus: enabled\nPolicyName: {','.join(state['users'][user])}\nMemberOf: []")
done(3)
'''


def run_minio_init(script: str, env: dict[str, str], workdir: Path, *, users: dict[str, list[str]] | None = None,
                   attach_ignored: bool = False) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run a minio-init job's shell script (`/bin/sh -ec SCRIPT`) against the stubbed `mc`; ``users``: the
    server's users and their attached policies before the run (an older install). Its files under /tmp go to
    ``workdir`` instead. Returns the finished process and the server's state afterwards."""
    bin_dir = workdir / "bin"
    tmp = workdir / "tmp"
    bin_dir.mkdir(parents=True)
    tmp.mkdir()
    stub = bin_dir / "mc"
    stub.write_text(f"#!{sys.executable}\n{_MC_STUB}")
    stub.chmod(0o755)
    state = workdir / "mc-state.json"
    state.write_text(json.dumps({"calls": [], "buckets": [], "policies": {}, "users": users or {}}))
    run_env = {**env, "PATH": f"{bin_dir}:/usr/bin:/bin", "MC_STUB_STATE": str(state), "HOME": str(tmp)}
    if attach_ignored:
        run_env["MC_STUB_ATTACH_IGNORED"] = "1"
    proc = subprocess.run(["/bin/sh", "-ec", script.replace("/tmp/", f"{tmp}/")], env=run_env, capture_output=True,
                          text=True, timeout=60)
    return proc, json.loads(state.read_text())


def policy_resources(policy: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(resources with a write action, all resources) of an S3 policy document; Deny statements are not used."""
    written, every = set(), set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow", statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert all(a.startswith("s3:") and "*" not in a for a in actions), f"wildcard or non-S3 action: {actions}"
        every |= set(resources)
        if any(a.removeprefix("s3:").startswith(("Put", "Delete", "Abort")) for a in actions):
            written |= set(resources)
    return written, every


def check_bucket_scoped_minio_init(script: str, env: dict[str, str], workdir: Path, *, sprout_key: str,
                                   mlflow_key: str, sprout_bucket: str, mlflow_bucket: str,
                                   sprout_read: tuple[str, ...] = ()) -> dict[str, Any]:
    """The minio-init script, run against the stubbed `mc`: each key gets one policy of its own that reaches its
    bucket only (Sprout may also read ``sprout_read``); an older install's `readwrite` is detached; a policy
    that does not stick fails the job. Returns the created policies."""
    proc, state = run_minio_init(script, env, workdir / "fresh")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    policies: dict[str, Any] = state["policies"]
    assert {sprout_bucket, mlflow_bucket} <= set(state["buckets"])
    assert set(state["users"]) == {sprout_key, mlflow_key}
    for key, bucket, other, readable in ((sprout_key, sprout_bucket, mlflow_bucket, sprout_read),
                                         (mlflow_key, mlflow_bucket, sprout_bucket, ())):
        [policy] = state["users"][key]
        assert policy not in ("readwrite", "readonly", "writeonly", "consoleAdmin", "diagnostics"), policy
        written, every = policy_resources(state["policies"][policy])
        own = {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
        assert f"arn:aws:s3:::{bucket}/*" in written, f"{key} cannot write its bucket {bucket}"
        assert written <= own, f"{key} ({policy}) may write {sorted(written - own)}"
        read_only = {f"arn:aws:s3:::{b}{suffix}" for b in readable for suffix in ("", "/*")}
        assert every <= own | read_only, f"{key} ({policy}) reaches {sorted(every - own - read_only)}"
        assert not {f"arn:aws:s3:::{other}", f"arn:aws:s3:::{other}/*"} & every, f"{key} reaches {other}"
    # an older install: the built-in `readwrite` (every bucket) is taken away
    proc, state = run_minio_init(script, env, workdir / "upgrade",
                                 users={sprout_key: ["readwrite"], mlflow_key: ["readwrite"]})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all("readwrite" not in attached for attached in state["users"].values()), state["users"]
    # a policy that does not stick fails the job instead of leaving a key without (or with the old) access
    proc, _ = run_minio_init(script, env, workdir / "broken", attach_ignored=True)
    assert proc.returncode != 0, "the job does not check that the policies are attached"
    return policies
