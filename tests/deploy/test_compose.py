"""docker-compose.yml, checked without a Docker daemon: Debian's docker-compose (v1) `config -q` with an `.env`
from `make env`'s generator, the compose-spec JSON schema (check-jsonschema), and the product's rules:
healthchecks everywhere, health-gated start order, named volumes for state, secrets only from `.env` and
none with a default, each container only the secrets it uses, the GPU profile; the exposure rules (ports on
127.0.0.1 unless BIND_ADDRESS, MLflow behind its basic-auth login, no Prometheus lifecycle API, MinIO keys
scoped to their bucket); the mounted monitoring files; the PostgreSQL init script on a real PostgreSQL."""

from __future__ import annotations

import ipaddress
import json
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml

from model.core.settings import Settings
from streamlit_app.settings import UiSettings
from tests.deploy.tools import (
    AIRFLOW_PLUGINS,
    AIRFLOW_PYTHON,
    AUTH_MANAGER,
    COMPOSE,
    DOCKER,
    DOCKERFILES,
    GEN_ENV,
    REPO_ROOT,
    check_bucket_scoped_minio_init,
    docker_compose,
    load_yaml,
    run,
    venv_tool,
)
from tests.servers import postgres
from tests.servers.processes import free_port, make_tmpdir, run_to_log
from tests.utils.markers import needs

SECRET_NAME = re.compile(r"PASSWORD(?!S_FILE)|SECRET|_KEY|TOKEN|FERNET|JWT")
BIND = re.compile(r"^(?P<source>.+?):(?P<target>/[^:]*)(?::(?P<mode>ro|rw))?$")
ONE_SHOT = {"minio-init", "sprout-init", "airflow-init"}
# State and where it lives in its container: each must be a named volume.
STATE = {"postgres": "/var/lib/postgresql/data", "minio": "/data", "prometheus": "/prometheus",
         "grafana": "/var/lib/grafana", "airflow-scheduler": "/opt/airflow/logs", "api": "/var/lib/sprout"}


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / ".env"
    run([str(GEN_ENV), "-o", str(path)])
    return path


def env_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def resolve(env_file: Path) -> dict[str, Any]:
    """The compose file as docker-compose v1 resolves it (interpolated, anchors merged, all profiles)."""
    proc = run([docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE), "--profile", "gpu",
                "--profile", "train", "config"], cwd=REPO_ROOT)
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
@needs("root")  # docker-compose
def resolved(env_file: Path) -> dict[str, Any]:
    return resolve(env_file)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def interpolations() -> list[tuple[str, str, str]]:
    """(name, operator, rest) of every ${...} in the compose file outside comments."""
    lines = COMPOSE.read_text().splitlines()
    text = "\n".join(line.split(" #")[0] for line in lines if not line.lstrip().startswith("#"))
    return re.findall(r"(?<!\$)\$\{(\w+)(:?[-?]?)([^}]*)\}", text)  # `$${x}` is the shell's, not compose's


# --------------------------------------------------------------------------- the tools


@pytest.mark.root
def test_docker_compose_v1_config_is_valid(env_file: Path) -> None:
    compose = docker_compose()
    assert "version 1." in run([compose, "version"]).stdout
    for profiles in ([], ["--profile", "gpu"], ["--profile", "train"]):
        run([compose, "--env-file", str(env_file), "-f", str(COMPOSE), *profiles, "config", "-q"], cwd=REPO_ROOT)


@pytest.mark.root
def test_compose_refuses_to_start_without_the_generated_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("# nothing\n")
    proc = run([docker_compose(), "--env-file", str(empty), "-f", str(COMPOSE), "config", "-q"], cwd=tmp_path,
               check=False)
    assert proc.returncode != 0 and "run make env" in proc.stderr, proc.stderr


def test_compose_spec_json_schema() -> None:
    proc = run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert "ok" in proc.stdout


def test_the_schema_check_catches_a_bad_compose_file(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  api:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n      retrys: 3\n")
    proc = run([venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)], check=False)
    assert proc.returncode != 0 and "retrys" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- services, order, volumes


def test_the_whole_product_is_there(resolved: dict[str, Any]) -> None:
    services = set(resolved["services"])
    assert {"postgres", "minio", "minio-init", "mlflow", "sprout-init", "api", "streamlit", "airflow-init",
            "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "prometheus", "grafana",
            "trainer", "trainer-gpu", "redis"} <= services


def test_every_service_has_a_healthcheck(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: {check['test']}"


def test_start_order_waits_for_health(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            condition = spec["condition"]
            if dependency in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} → {dependency}: {condition}"
            else:
                assert condition == "service_healthy", f"{name} → {dependency}: {condition}"
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no"
    for name in ("postgres", "minio", "mlflow", "redis", "api", "streamlit", "airflow-api-server", "airflow-scheduler",
                 "airflow-dag-processor", "prometheus", "grafana"):
        assert services[name]["restart"] == "unless-stopped", name
    # the chain the product needs
    assert set(services["api"]["depends_on"]) == {"sprout-init", "mlflow", "redis"}
    assert set(services["sprout-init"]["depends_on"]) == {"postgres", "minio-init", "mlflow"}
    assert set(services["mlflow"]["depends_on"]) == {"postgres", "minio-init"}
    assert "api" in services["streamlit"]["depends_on"] and "api" in services["prometheus"]["depends_on"]


def test_state_lives_in_named_volumes(raw: dict[str, Any]) -> None:
    declared = set(raw["volumes"])
    for name, service in raw["services"].items():
        targets = {}
        for volume in service.get("volumes", []):
            match = BIND.match(volume)
            assert match, volume
            source, target, mode = match["source"], match["target"], match["mode"]
            targets[target] = source
            if source.startswith((".", "/", "$")):  # a bind mount: configuration or the seed data, read-only
                assert mode == "ro", f"{name}: bind mount {volume} must be read-only"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
        if name in STATE:
            assert targets.get(STATE[name]) in declared, f"{name}: {STATE[name]} is not a named volume"
    assert all(spec is None for spec in raw["volumes"].values())  # local named volumes


def test_images_are_pinned_and_built_from_the_dockerfiles(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        image = service["image"]
        if "build" in service:
            dockerfile = REPO_ROOT / service["build"]["context"] / service["build"]["dockerfile"]
            assert dockerfile.is_file() and dockerfile.parent == DOCKER, f"{name}: {dockerfile}"
            assert image.startswith("sprout-"), image
        else:
            assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*", image) and "latest" not in image, f"{name}: {image}"
    builds = {s["build"]["dockerfile"] for s in raw["services"].values() if "build" in s}
    assert builds == {f"docker/{n}.Dockerfile" for n in ("api", "streamlit", "trainer", "airflow", "mlflow")}


def test_gpu_profile_reserves_an_nvidia_gpu_for_the_trainer(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    gpu = services["trainer-gpu"]
    assert gpu["profiles"] == ["gpu"] and services["trainer"]["profiles"] == ["train"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["build"]["args"]["TORCH_VARIANT"] == "cuda"
    assert services["trainer"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert gpu["environment"]["SPROUT_DEVICE"] == "cuda"
    for name, service in services.items():
        if name != "trainer-gpu":
            assert "deploy" not in service, f"{name} should not reserve devices"
        if name.startswith("trainer"):
            continue
        assert "profiles" not in service, f"{name} must start with a plain `docker compose up`"


# --------------------------------------------------------------------------- secrets


def test_no_secret_has_a_default(env_file: Path) -> None:
    generated = env_values(env_file)
    seen = set()
    for name, operator, rest in interpolations():
        seen.add(name)
        if name in ("WEBHOOK_URL", "WEBHOOK_SECRET"):  # off unless .env sets both: empty, never a default secret
            assert (operator, rest) == (":-", ""), f"${{{name}}} must be ${{{name}:-}}"
        elif name in generated or SECRET_NAME.search(name):
            assert operator == ":?", f"${{{name}}} must be required (${{{name}:?...}}), not {operator or 'plain'}"
        else:
            # the rollout's settings (docs: concepts/rollout): a default, or empty for Sprout's own
            assert re.fullmatch(r"\w+_PORT|IMAGE_TAG|SEED_DIR|BIND_ADDRESS|ROLLOUT\w*|(SHADOW|CANARY)_SHARE", name), \
                f"unexpected variable {name}"
    required = {name for name, operator, _ in interpolations() if operator == ":?"}
    assert required == set(generated), f"make env writes {sorted(set(generated) - required)} unused, " \
                                       f"misses {sorted(required - set(generated))}"


def test_no_secret_is_written_into_the_compose_file(raw: dict[str, Any]) -> None:
    def environments() -> list[tuple[str, dict[str, Any]]]:
        out = [(name, s.get("environment") or {}) for name, s in raw["services"].items()]
        return out + [(key, value) for key, value in raw.items()  # the x- blocks of variables (not of services)
                      if key.startswith("x-") and all(re.fullmatch(r"[A-Z0-9_]+|<<", k) for k in value)]

    for owner, environment in environments():
        assert isinstance(environment, dict), owner
        for key, value in environment.items():
            if SECRET_NAME.search(key) and key not in ("SPROUT_ENV",):
                assert "${" in str(value), f"{owner}: {key} has a literal value"
            if "_URL" in key or "SQL_ALCHEMY_CONN" in key:
                if "@" in str(value):
                    assert re.search(r":\$\{\w+:\?[^}]*\}@", str(value)), f"{owner}: {key} embeds a literal password"


def test_make_env_writes_random_private_values_and_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    run([str(GEN_ENV), "-o", str(path)])
    first = env_values(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for name, value in first.items():
        assert not name.upper().startswith("SPROUT_"), f"{name}: Sprout's settings would read it from .env"
        if SECRET_NAME.search(name) and "ACCESS_KEY" not in name:  # an access key is a user name
            assert len(value) >= 24 and value.lower() not in ("changeme", "password", "secret"), name
    other = tmp_path / "other.env"
    run([str(GEN_ENV), "-o", str(other)])
    assert all(first[k] != v for k, v in env_values(other).items() if SECRET_NAME.search(k)), "values repeat"
    # kept on a second run; a missing name is added
    path.write_text("\n".join(line for line in path.read_text().splitlines() if "GRAFANA_ADMIN_PASSWORD" not in line))
    out = run([str(GEN_ENV), "-o", str(path)]).stdout
    assert "added 1 missing" in out
    again = env_values(path)
    assert {k: v for k, v in again.items() if k != "GRAFANA_ADMIN_PASSWORD"} == \
           {k: v for k, v in first.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    assert again["GRAFANA_ADMIN_PASSWORD"]
    # --force writes new values
    run([str(GEN_ENV), "-o", str(path), "--force"])
    assert env_values(path)["POSTGRES_PASSWORD"] != first["POSTGRES_PASSWORD"]
    # Sprout's own settings, which also read `.env`, are not changed by it
    from_env = Settings(_env_file=str(path))  # type: ignore[call-arg]
    assert from_env.secret_key is None and from_env.s3_access_key is None and from_env.database_url is None


def test_fernet_key_is_valid(env_file: Path) -> None:
    from cryptography.fernet import Fernet

    Fernet(env_values(env_file)["AIRFLOW_FERNET_KEY"].encode())


# --------------------------------------------------------------------------- exposure: ports, MLflow, Prometheus, MinIO

# The .env secrets each container may get (by value: a password inside a URL counts too). Usernames are left out
# (several are "admin"); MINIO_ROOT_USER is not a secret name but is listed where it goes.
AIRFLOW_CORE = {"DB_PASSWORD_AIRFLOW", "AIRFLOW_FERNET_KEY", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_JWT_SECRET"}
SPROUT_CORE = {"DB_PASSWORD_SPROUT", "S3_ACCESS_KEY_SPROUT", "S3_SECRET_KEY_SPROUT"}
SIGNING_KEY = {"API_SECRET_KEY"}  # the API's alone: no CLI command (training, the DAGs' tasks) reads it
MLFLOW_LOGIN = {"MLFLOW_ADMIN_PASSWORD"}
MLFLOW_API_LOGIN = {"MLFLOW_API_PASSWORD"}
SECRETS_OF = {
    "postgres": {"POSTGRES_PASSWORD", "DB_PASSWORD_SPROUT", "DB_PASSWORD_MLFLOW", "DB_PASSWORD_AIRFLOW"},
    "minio": {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"},
    "minio-init": {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "S3_ACCESS_KEY_SPROUT", "S3_SECRET_KEY_SPROUT",
                   "S3_ACCESS_KEY_MLFLOW", "S3_SECRET_KEY_MLFLOW"},
    "mlflow": {"DB_PASSWORD_MLFLOW", "S3_ACCESS_KEY_MLFLOW", "S3_SECRET_KEY_MLFLOW", "MLFLOW_ADMIN_PASSWORD",
               "MLFLOW_FLASK_SECRET_KEY"},
    "sprout-init": SPROUT_CORE | MLFLOW_LOGIN | MLFLOW_API_LOGIN | {"REVIEWER_PASSWORD"},
    "api": SPROUT_CORE | SIGNING_KEY | MLFLOW_API_LOGIN | {"AIRFLOW_API_PASSWORD", "REDIS_PASSWORD"},
    "streamlit": set(),
    "redis": {"REDIS_PASSWORD"},
    "airflow-init": AIRFLOW_CORE | {"AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_API_PASSWORD"},
    "airflow-api-server": AIRFLOW_CORE,
    "airflow-dag-processor": AIRFLOW_CORE,
    "airflow-scheduler": AIRFLOW_CORE | SPROUT_CORE | MLFLOW_LOGIN,  # LocalExecutor: runs the tasks
    "prometheus": set(),
    "grafana": {"GRAFANA_ADMIN_PASSWORD"},
    "trainer": SPROUT_CORE | MLFLOW_LOGIN,
    "trainer-gpu": SPROUT_CORE | MLFLOW_LOGIN,
}
# The processes that train and register, and so get MLflow's admin login: the trainer, Airflow's tasks and
# sprout-init (which creates the API's own login); the API logs in as itself.
MLFLOW_CLIENTS = {"trainer", "trainer-gpu", "airflow-scheduler", "sprout-init"}


def published_ports(resolved: dict[str, Any]) -> dict[str, list[str]]:
    """HOST_IP:PUBLISHED:TARGET per published port (`config` prints the short form, or the long one without an IP)."""
    def short(port: str | dict[str, Any]) -> str:
        if isinstance(port, dict):
            return f"{port.get('host_ip', '')}:{port['published']}:{port['target']}/{port.get('protocol', 'tcp')}"
        return str(port)

    out = {name: [short(p) for p in service.get("ports", [])] for name, service in resolved["services"].items()}
    return {name: ports for name, ports in out.items() if ports}


def test_published_ports_bind_to_loopback_unless_bind_address_is_set(raw: dict[str, Any], resolved: dict[str, Any],
                                                                      env_file: Path, tmp_path: Path) -> None:
    """Every published port listens on 127.0.0.1 by default; BIND_ADDRESS in .env moves all of them at once."""
    ports = published_ports(resolved)
    assert {"api", "streamlit", "mlflow", "airflow-api-server", "grafana", "prometheus", "minio"} <= set(ports)
    for name, mappings in ports.items():
        for mapping in mappings:
            assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+(/tcp)?", mapping), f"{name} publishes {mapping} beyond this host"
    for name, service in raw["services"].items():
        for mapping in service.get("ports", []):
            assert isinstance(mapping, str) and mapping.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {mapping}"
        assert "expose" not in service and service.get("network_mode") != "host", name
    public = tmp_path / "public.env"
    public.write_text(env_file.read_text() + "BIND_ADDRESS=0.0.0.0\n")
    for name, mappings in published_ports(resolve(public)).items():
        assert len(mappings) == len(ports[name]), name
        assert all(m.startswith("0.0.0.0:") for m in mappings), f"{name}: {mappings}"


def test_mlflow_runs_its_basic_auth_app_with_generated_credentials(raw: dict[str, Any], resolved: dict[str, Any],
                                                                   env_file: Path) -> None:
    """`mlflow server --app-name basic-auth` (anonymous calls: 401), its admin and CSRF key from .env only, the
    user store in the mlflow database, no password on the command line; the image has the `auth` extra."""
    generated = env_values(env_file)
    mlflow = resolved["services"]["mlflow"]
    command = mlflow["command"]
    assert command[:3] == ["mlflow-basic-auth", "mlflow", "server"], command
    assert command[command.index("--app-name") + 1] == "sprout-basic-auth"  # basic-auth + the artifact rule
    assert "--backend-store-uri" not in command and not any(v in " ".join(command) for v in generated.values()
                                                            if len(v) >= 24), "a secret on MLflow's command line"
    env = mlflow["environment"]
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"] == generated["MLFLOW_ADMIN_USERNAME"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == generated["MLFLOW_ADMIN_PASSWORD"]
    assert len(generated["MLFLOW_ADMIN_PASSWORD"]) >= 24  # MLflow itself refuses fewer than 12
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == generated["MLFLOW_FLASK_SECRET_KEY"]
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")  # also the wrapper's user store
    assert "MLFLOW_AUTH_DATABASE_URI" not in env or env["MLFLOW_AUTH_DATABASE_URI"].startswith("postgresql")
    raw_env = raw["services"]["mlflow"]["environment"]
    for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", raw_env[key]), f"mlflow: {key} must be required, not {raw_env[key]}"
    # /health stays open for the healthcheck: it is the one route the auth app leaves without a login
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])
    mlflow_image = DOCKERFILES["mlflow"].read_text()
    assert '"mlflow[auth]' in mlflow_image and "import flask_wtf" in mlflow_image
    assert "COPY --chmod=0755 docker/mlflow-basic-auth.sh /usr/local/bin/mlflow-basic-auth" in mlflow_image
    assert raw["services"]["mlflow"]["build"]["dockerfile"] == "docker/mlflow.Dockerfile"


def test_mlflow_login_goes_to_the_registry_clients_only(resolved: dict[str, Any], env_file: Path) -> None:
    """The trainer, Airflow's tasks and sprout-init log in to MLflow (MLFLOW_TRACKING_USERNAME / _PASSWORD, read by
    MLflow's client) as its admin; the internet-facing API as its own user (serving's grants, made by sprout-init);
    nobody else gets a login, Streamlit least of all."""
    generated = env_values(env_file)
    for name, service in resolved["services"].items():
        env = service.get("environment") or {}
        if name == "api":
            assert env.get("MLFLOW_TRACKING_USERNAME") == generated["MLFLOW_API_USERNAME"] != "admin"
            assert env.get("MLFLOW_TRACKING_PASSWORD") == generated["MLFLOW_API_PASSWORD"]
            assert env.get("SPROUT_MLFLOW_TRACKING_URI") == "http://mlflow:5000"
        elif name in MLFLOW_CLIENTS:
            assert env.get("MLFLOW_TRACKING_USERNAME") == generated["MLFLOW_ADMIN_USERNAME"], name
            assert env.get("MLFLOW_TRACKING_PASSWORD") == generated["MLFLOW_ADMIN_PASSWORD"], name
            assert env.get("SPROUT_MLFLOW_TRACKING_URI") == "http://mlflow:5000", name
        else:
            assert not {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} & set(env), f"{name}: MLflow's login"
    assert not resolved["services"]["streamlit"].get("env_file")


def test_each_container_gets_only_the_secrets_it_uses(resolved: dict[str, Any], env_file: Path) -> None:
    """Which .env secrets reach each container (by value, so a password inside a URL counts): exactly the
    ones it uses. Streamlit gets none; the API no MinIO root password; only the scheduler of Airflow gets
    Sprout's secrets (it runs the tasks); only airflow-init the Airflow admin's password (the API its own)."""
    generated = env_values(env_file)
    secrets = {name: value for name, value in generated.items()
               if SECRET_NAME.search(name) or name == "MINIO_ROOT_USER"}
    assert set(SECRETS_OF) == set(resolved["services"])
    for name, service in resolved["services"].items():
        assert "env_file" not in service, f"{name}: env_file passes every secret"
        values = [str(v) for v in (service.get("environment") or {}).values()]
        values += [str(service.get("command", "")), str(service.get("entrypoint", ""))]
        got = {secret for secret, value in secrets.items() if any(value in v for v in values)}
        assert got == SECRETS_OF[name], f"{name}: extra {sorted(got - SECRETS_OF[name])}, " \
                                        f"missing {sorted(SECRETS_OF[name] - got)}"


def test_prometheus_has_no_lifecycle_api(resolved: dict[str, Any]) -> None:
    """--web.enable-lifecycle would let anyone who reaches Prometheus stop it (/-/quit) or reload it."""
    prometheus = resolved["services"]["prometheus"]
    assert any(str(arg).startswith("--config.file=") for arg in prometheus["command"])
    for name, service in resolved["services"].items():
        words = " ".join(str(w) for key in ("command", "entrypoint") for w in (service.get(key) or []))
        assert "enable-lifecycle" not in words, f"{name}: {words}"
    assert "enable-lifecycle" not in COMPOSE.read_text().replace("No --web.enable-lifecycle", "")


def test_api_processes_share_their_rate_limits_and_believe_only_the_ui_forwarding(resolved: dict[str, Any],
                                                                                    env_file: Path) -> None:
    """The API counts rate limits in the Valkey service (its password from .env, on no command line, no port
    published, nothing on disk) and believes X-Forwarded-For only from the Streamlit server's fixed address, on a
    network of those two alone (no other container can take that address)."""
    services = resolved["services"]
    api, ui, redis = services["api"], services["streamlit"], services["redis"]
    password = env_values(env_file)["REDIS_PASSWORD"]
    assert api["environment"]["SPROUT_RATE_LIMIT_STORAGE"] == f"redis://:{password}@redis:6379/0"
    assert redis["environment"] == {"REDIS_PASSWORD": password} and "ports" not in redis and "volumes" not in redis
    script = " ".join(redis["entrypoint"] + redis["command"])
    assert password not in script and "requirepass" in script and "save \"\"" in script
    assert "appendonly no" in script and redis["user"] != "root"
    on_ui = {name for name, service in services.items() if "ui" in (service.get("networks") or {})}
    assert on_ui == {"api", "streamlit"} and set(ui["networks"]) == {"ui"}
    address = ui["networks"]["ui"]["ipv4_address"]
    assert api["environment"]["SPROUT_TRUSTED_PROXIES"] == address
    [subnet] = resolved["networks"]["ui"]["ipam"]["config"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet["subnet"])


def test_minio_init_gives_each_key_its_own_bucket_only(resolved: dict[str, Any], env_file: Path,
                                                       tmp_path: Path) -> None:
    """The minio-init script, run against a stubbed `mc`: Sprout's key gets a policy on bucket `sprout` only,
    MLflow's on `mlflow` only (neither can write the other's), an old `readwrite` is detached."""
    job = resolved["services"]["minio-init"]
    assert job["entrypoint"] == ["/bin/sh", "-ec"]
    [script] = job["command"]
    script = script.replace("$$", "$")  # `config` prints compose's escape; the container gets one `$`
    env = {k: str(v) for k, v in job["environment"].items()}
    generated = env_values(env_file)
    check_bucket_scoped_minio_init(script, env, tmp_path, sprout_key=generated["S3_ACCESS_KEY_SPROUT"],
                                   mlflow_key=generated["S3_ACCESS_KEY_MLFLOW"], sprout_bucket="sprout",
                                   mlflow_bucket="mlflow")
    assert resolved["services"]["api"]["environment"]["SPROUT_S3_BUCKET"] == "sprout"
    assert "s3://mlflow/" in " ".join(resolved["services"]["mlflow"]["command"])


# --------------------------------------------------------------------------- settings reach real settings


def container_settings(env: dict[str, Any]) -> Settings:
    """The settings a container's SPROUT_* environment gives (empty values are unset: Sprout ignores them)."""
    return Settings(**{k.removeprefix("SPROUT_").lower(): v for k, v in env.items()  # type: ignore[arg-type]
                       if k.removeprefix("SPROUT_").lower() in Settings.model_fields and v not in ("", None)})


def test_sprout_settings_in_the_containers_are_real_settings(resolved: dict[str, Any]) -> None:
    """Every SPROUT_* variable given to a container is a field of model/settings.py, one the DAGs read, or
    one the init script reads; the production settings validate."""
    fields = {f"SPROUT_{name.upper()}" for name in Settings.model_fields}
    dag_source = (REPO_ROOT / "dags" / "sprout_dag_support" / "settings.py").read_text()  # DagSettings: _env(NAME)
    dag_names = set(re.findall(r"\"(SPROUT_[A-Z0-9_]+)\"", dag_source)) | \
        {f"SPROUT_{name}" for name in re.findall(r"_env\(\"([A-Z0-9_]+)\"", dag_source)}
    init_names = set(re.findall(r"(SPROUT_[A-Z0-9_]+)", (DOCKER / "sprout-init.sh").read_text()))
    postgres_names = {"SPROUT_DB_PASSWORD"}
    ui_names = {f"SPROUT_{name.upper()}" for name in UiSettings.model_fields}
    for name, service in resolved["services"].items():
        env = service.get("environment") or {}
        for key in env:
            if key.startswith("SPROUT_"):
                known = fields | dag_names | init_names | postgres_names | ui_names
                assert key in known, f"{name}: {key} is read by nobody"
        if "SPROUT_DATABASE_URL" in env:
            settings = container_settings(env)
            assert settings.env == "production" and settings.s3_endpoint == "minio:9000"


@pytest.mark.server  # Airflow's virtualenv
def test_airflow_settings_are_real_airflow_options(resolved: dict[str, Any], tmp_path: Path) -> None:
    """AIRFLOW__SECTION__KEY variables name options that the image's Airflow version has, or ([sprout]) that
    Sprout's auth manager reads; the auth manager they name is the one Airflow loads from the plugins folder."""
    assert AIRFLOW_PYTHON.is_file(), "the Airflow virtualenv is missing: make install"
    keys = sorted({k for s in resolved["services"].values() for k in (s.get("environment") or {})
                   if k.startswith("AIRFLOW__")})
    assert keys
    ours = set(re.findall(r'conf\.get\("sprout", "(\w+)"', (AIRFLOW_PLUGINS / "sprout_auth_manager.py").read_text()))
    assert {k.split("__")[2].lower() for k in keys if k.startswith("AIRFLOW__SPROUT__")} <= ours
    script = (
        "import json, sys\n"
        "from airflow.configuration import conf\n"
        "from airflow.api_fastapi.app import get_auth_manager_cls\n"
        "known = conf.configuration_description\n"
        "missing = [k for k in json.loads(sys.argv[1])\n"
        "           if k.split('__')[2].lower() not in known.get(k.split('__')[1].lower(), {}).get('options', {})]\n"
        "cls = get_auth_manager_cls()\n"
        "print(json.dumps([missing, f'{cls.__module__}.{cls.__name__}']))\n"
    )
    [manager] = {s["environment"]["AIRFLOW__CORE__AUTH_MANAGER"] for s in resolved["services"].values()
                 if "AIRFLOW__CORE__AUTH_MANAGER" in (s.get("environment") or {})}
    proc = run([str(AIRFLOW_PYTHON), "-c", script, json.dumps([k for k in keys if "__SPROUT__" not in k])],
               timeout=120, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path),
                                               "AIRFLOW__CORE__AUTH_MANAGER": manager,
                                               "AIRFLOW__CORE__PLUGINS_FOLDER": str(AIRFLOW_PLUGINS)})
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[], AUTH_MANAGER]


def test_the_api_logs_in_to_airflow_as_its_own_trigger_user(resolved: dict[str, Any], env_file: Path,
                                                            tmp_path: Path) -> None:
    """The API's Airflow login is not the admin but its own user: a viewer that Sprout's auth manager also lets
    start Sprout's DAGs and announce approvals, on every Airflow container; airflow-init's script (run here
    with a stub `airflow`) writes both users' passwords, readable by Airflow alone."""
    generated = env_values(env_file)
    api = resolved["services"]["api"]["environment"]
    admin, api_user = generated["AIRFLOW_ADMIN_USERNAME"], generated["AIRFLOW_API_USERNAME"]
    assert api["SPROUT_AIRFLOW_USERNAME"] == api_user != admin
    assert api["SPROUT_AIRFLOW_PASSWORD"] == generated["AIRFLOW_API_PASSWORD"] != generated["AIRFLOW_ADMIN_PASSWORD"]
    for name in ("airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        env = resolved["services"][name]["environment"]
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == AUTH_MANAGER, name
        users = dict(u.split(":") for u in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
        assert users == {admin: "admin", api_user: "viewer"}, name
        assert env["AIRFLOW__SPROUT__TRIGGER_USERS"] == api_user, name
    init = resolved["services"]["airflow-init"]
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "airflow").write_text("#!/bin/sh\nexit 0\n")
    (stub / "airflow").chmod(0o755)
    (stub / "python").symlink_to(sys.executable)
    passwords = tmp_path / "passwords.json"
    env = {k: str(v) for k, v in init["environment"].items()} | {
        "PATH": f"{stub}:/usr/bin:/bin", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords)}
    run([*init["entrypoint"], *init["command"]], env=env, cwd=tmp_path)
    assert json.loads(passwords.read_text()) == {admin: generated["AIRFLOW_ADMIN_PASSWORD"],
                                                 api_user: generated["AIRFLOW_API_PASSWORD"]}
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- mounted monitoring files


def test_monitoring_mounts_match_the_monitoring_files(raw: dict[str, Any]) -> None:
    services = raw["services"]
    mounts = {name: {BIND.match(v)["target"]: BIND.match(v)["source"] for v in s.get("volumes", [])}  # type: ignore[index]
              for name, s in services.items()}
    prometheus = mounts["prometheus"]
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./monitoring/prometheus.yml"
    config = load_yaml(REPO_ROOT / "monitoring" / "prometheus.yml")
    for rule_file in config["rule_files"]:  # relative to the config file's directory
        assert (Path("/etc/prometheus") / rule_file).parent.as_posix() in prometheus
        assert (REPO_ROOT / "monitoring" / rule_file).is_file(), rule_file
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert "api:8000" in targets and "api" in services
    grafana = mounts["grafana"]
    provisioning = REPO_ROOT / grafana["/etc/grafana/provisioning"]
    datasource = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    [provider] = load_yaml(provisioning / "dashboards" / "sprout.yml")["providers"]
    assert grafana[provider["options"]["path"]] == "./monitoring/grafana/dashboards"
    for source in [*prometheus.values(), *grafana.values()]:
        if source.startswith("./"):
            assert (REPO_ROOT / source).exists(), source


# --------------------------------------------------------------------------- PostgreSQL init script


@pytest.mark.server
def test_postgres_init_script_creates_the_three_databases() -> None:
    """docker/postgres/init-databases.sh, as the postgres image runs it, on a real (throwaway) PostgreSQL."""
    bindir = postgres.find_pg_bin()
    base = make_tmpdir("sprout-pginit-", world_readable=True)
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    for log in ("initdb.log", "pg.log"):
        (base / log).touch()
    postgres.chown_tree_to_pg_user(base)
    port = free_port()
    try:
        run_to_log(postgres.as_pg_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--no-sync",
                                        "--auth-local=trust", "--auth-host=scram-sha-256"]),
                   base / "initdb.log", "initdb", cwd=base)
        run_to_log(postgres.as_pg_user([str(bindir / "pg_ctl"), "start", "-D", str(data), "-w", "-l",
                                        str(base / "pg.log"), "-o",
                                        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"]),
                   base / "pg.log", "pg_ctl start", cwd=base)
        passwords = {"SPROUT_DB_PASSWORD": "a1" * 12, "MLFLOW_DB_PASSWORD": "b2" * 12,
                     "AIRFLOW_DB_PASSWORD": "c3" * 12}
        env = {"PATH": f"{bindir}:/usr/bin:/bin", "POSTGRES_USER": "postgres", "PGHOST": str(sock),
               "PGPORT": str(port), **passwords}
        script = DOCKER / "postgres" / "init-databases.sh"
        proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for app in ("sprout", "mlflow", "airflow"):
            conn = psycopg2.connect(host="127.0.0.1", port=port, user=app, dbname=app,
                                    password=passwords[f"{app.upper()}_DB_PASSWORD"])
            with conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE t (x int)")  # the role owns its database
                cur.execute("SELECT current_database(), current_user")
                assert cur.fetchone() == (app, app)
            conn.close()
        with pytest.raises(psycopg2.OperationalError):  # a role cannot enter another one's database
            psycopg2.connect(host="127.0.0.1", port=port, user="sprout", dbname="mlflow",
                             password=passwords["SPROUT_DB_PASSWORD"]).close()
        # a missing password fails the first start loudly
        del env["AIRFLOW_DB_PASSWORD"]
        env["SPROUT_DB_PASSWORD"] = "x"  # (roles exist now; the check comes first for airflow)
        proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
    finally:
        postgres.stop_postgres(bindir, data, base)


ROLLOUT_PROCESSES = ("api", "airflow-scheduler", "airflow-dag-processor", "trainer")  # serve, judge, promote


def test_rollouts_default_to_shadow_and_env_tunes_the_rule(resolved: dict[str, Any], env_file: Path,
                                                           tmp_path: Path) -> None:
    """The API, Airflow (which parses the sprout_rollout DAG and runs its judge) and the trainer get SPROUT_ROLLOUT
    shadow, both shares and the DAG's schedule; every threshold of the rule is there, empty (Sprout's default) unless
    .env sets it; .env's ROLLOUT=direct promotes at once, as `make up` does."""
    rule = {f"SPROUT_{f.upper()}" for f in Settings.model_fields if f.startswith("rollout_")}
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    services = resolved["services"]
    assert set(ROLLOUT_PROCESSES) <= set(services)
    for name in ROLLOUT_PROCESSES:
        env = services[name]["environment"]
        assert (env["SPROUT_ROLLOUT"], env["SPROUT_SHADOW_SHARE"], env["SPROUT_CANARY_SHARE"]) == (
            "shadow", "1.0", "0.1"), name
        assert env["SPROUT_ROLLOUT_SCHEDULE"] == "*/5 * * * *", name
        assert {k for k in env if k.startswith("SPROUT_ROLLOUT_")} - {"SPROUT_ROLLOUT_SCHEDULE"} == rule, name
        assert all(env[k] in ("", None) for k in rule), name
        if "SPROUT_DATABASE_URL" in env:
            settings = container_settings(env)
            assert settings.rollout == "shadow"
            assert settings.rollout_min_reviewed == defaults.rollout_min_reviewed

    tuned = tmp_path / ".env"
    tuned.write_text(env_file.read_text() + "ROLLOUT=direct\nROLLOUT_MIN_REVIEWED=60\n"
                     "ROLLOUT_TIMEOUT_FALLBACK=promote\nROLLOUT_SCHEDULE=*/10 * * * *\n")
    api = resolve(tuned)["services"]["api"]["environment"]
    settings = container_settings(api)
    assert (settings.rollout, settings.rollout_min_reviewed, settings.rollout_timeout_fallback) == (
        "direct", 60, "promote")
    assert api["SPROUT_ROLLOUT_SCHEDULE"] == "*/10 * * * *"
