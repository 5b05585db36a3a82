"""The Helm chart helm/sprout, checked offline: `helm lint --strict` and rendering with the Helm v4 SDK
(PyPI helm-python-sdk), with the default values and with a GPU / external-services values file; every
rendered manifest, the Secrets of `gen-env.sh --k8s` and the Pods the DAGs would create from the chart's
Airflow environment pass `kubernetes-validate --strict -k 1.30.0`; and the chart's promises (probes, HPA,
secrets referenced never inlined and each workload only the ones it uses, scrape annotations, dashboards as
sidecar ConfigMaps, GPU training pod; MLflow behind its basic-auth login and off the Ingress, NetworkPolicies
that let only their users reach MLflow, MinIO and PostgreSQL, MinIO keys scoped to their bucket)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from model.core.settings import Settings
from tests.deploy.tools import (
    AIRFLOW_PYTHON,
    AIRFLOW_VALUES,
    AUTH_MANAGER,
    CHART,
    CHART_CI_VALUES,
    DOCKER,
    GEN_ENV,
    KUBE_VERSION,
    REPO_ROOT,
    check_bucket_scoped_minio_init,
    dashboard_files,
    load_yaml,
    load_yaml_all,
    run,
    venv_tool,
)

try:
    import helm_python as helm
except ImportError:  # a missing tool fails the tests that need it (require_helm), never skips them
    helm = None  # type: ignore[assignment]

# Names of secret values; not *_ENV_SECRET (a Secret's name) nor *_SECRET_KEYS (names of its keys).
SECRET_ENV = re.compile(r"PASSWORD|SECRET(?!$|_KEYS$)|_KEY$|TOKEN|DATABASE_URL|BACKEND_STORE_URI")
NAMESPACE = "sprout"


def require_helm() -> Any:
    if helm is None:
        pytest.fail("helm_python not importable: pip install -e '.[dev]' (PyPI helm-python-sdk)")
    helm.disable_logging()
    return helm


class Render:
    """One rendering of the chart: its manifests by kind and name, and the files written for validation."""

    def __init__(self, values: dict[str, Any] | None, release: str, directory: Path) -> None:
        sdk = require_helm()
        self.values = values or {}
        self.release = release
        chart = sdk.Chart.load(CHART)
        self.merged = chart.merge_values(values)
        rendered = chart.render(values, name=release, namespace=NAMESPACE, is_install=True)
        self.notes = rendered.pop(f"{chart.name}/templates/NOTES.txt", "")
        self.objects: list[dict[str, Any]] = []
        directory.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []
        for template, text in sorted(rendered.items()):
            docs = load_yaml_all(text)
            if not docs:
                continue
            path = directory / template.replace("/", "__")
            path.write_text(text)
            self.files.append(path)
            self.objects.extend(docs)

    def kinds(self, kind: str) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self.objects if o["kind"] == kind}

    def get(self, kind: str, name: str) -> dict[str, Any]:
        objects = self.kinds(kind)
        assert name in objects, f"no {kind} {name}; have {sorted(objects)}"
        return objects[name]

    def pod_specs(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for o in self.objects:
            if o["kind"] in ("Deployment", "StatefulSet", "Job"):
                out.append((f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"]))
        return out


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Render:
    return Render(None, "sprout", tmp_path_factory.mktemp("helm-default"))


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Render:
    return Render(load_yaml(CHART_CI_VALUES), "prod", tmp_path_factory.mktemp("helm-gpu-external"))


@pytest.fixture(scope="module")
def k8s_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "sprout-secrets.yaml"
    run([str(GEN_ENV), "--k8s", "sprout", "-n", NAMESPACE, "-o", str(path)])
    return path


def kubernetes_validate(files: list[Path]) -> str:
    proc = run([venv_tool("kubernetes-validate"), "--strict", "-k", KUBE_VERSION, *map(str, files)], check=False)
    assert proc.returncode == 0, f"kubernetes-validate failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


# --------------------------------------------------------------------------- lint, render, validate


@pytest.mark.parametrize("values_file", [None, CHART_CI_VALUES], ids=["default", "gpu-external"])
def test_helm_lint_strict(values_file: Path | None) -> None:
    sdk = require_helm()
    assert sdk.helm_sdk_version().startswith("v4."), sdk.helm_sdk_version()
    values = load_yaml(values_file) if values_file else None
    report = sdk.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["total_charts_linted"] == 1
    assert not report["errors"], report
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings fail under --strict
    assert not problems, problems


def test_values_schema_accepts_the_exposure_values() -> None:
    """Every value of the MLflow ingress gate, the NetworkPolicies and the MinIO read buckets lints clean."""
    sdk = require_helm()
    values = {
        "ingress": {"enabled": True, "allowInsecure": True, "api": {"host": "api.example.com", "docs": True},
                    "mlflow": {"enabled": True, "host": "mlflow.example.com"}},
        "networkPolicy": {
            "enabled": True,
            "trainerPodSelector": {"matchLabels": {"app.kubernetes.io/part-of": "sprout"},
                                   "matchExpressions": [{"key": "sprout/task", "operator": "Exists"}]},
            "airflowPodSelector": {"matchLabels": {"tier": "airflow", "release": "airflow"}},
            "airflowNamespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "airflow"}},
            "extraFrom": {"mlflow": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "ingress"}}}],
                          "minio": [], "postgresql": []}},
        "objectStorage": {"minio": {"sproutReadBuckets": ["sprout-seed"]}},
    }
    report = sdk.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    assert not report["errors"], report
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]
    assert sdk.lint(CHART, {"networkPolicy": {"enable": True}}, strict=True)["errors"]


def test_values_schema_rejects_a_misspelled_value() -> None:
    sdk = require_helm()
    report = sdk.lint(CHART, {"api": {"replica": 3}}, strict=True)
    assert report["errors"] and "replica" in " ".join(report["errors"])
    with pytest.raises(sdk.HelmValuesError):
        sdk.Chart.load(CHART).render({"postgresql": {"bundled": "yes"}}, name="x", namespace="y")


@pytest.mark.parametrize("which", ["default", "production"])
def test_rendered_manifests_pass_kubernetes_validate_strict(which: str, request: pytest.FixtureRequest) -> None:
    render: Render = request.getfixturevalue(which)
    out = kubernetes_validate(render.files)
    assert out.count("passed for resource") == len(render.objects), out


def test_kubernetes_validate_is_strict(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n  selectr: {}\n")
    proc = run([venv_tool("kubernetes-validate"), "--strict", "-k", KUBE_VERSION, str(bad)], check=False)
    assert proc.returncode != 0 and "selectr" in proc.stdout + proc.stderr


def test_default_install_has_every_component(default: Render) -> None:
    assert set(default.kinds("Deployment")) == {"sprout-api", "sprout-streamlit", "sprout-mlflow", "sprout-redis"}
    assert set(default.kinds("StatefulSet")) == {"sprout-postgresql", "sprout-minio"}
    assert set(default.kinds("Service")) == {"sprout-api", "sprout-streamlit", "sprout-mlflow", "sprout-postgresql",
                                             "sprout-minio", "sprout-redis"}
    assert set(default.kinds("Job")) == {"sprout-init", "sprout-minio-init"}
    assert set(default.kinds("HorizontalPodAutoscaler")) == {"sprout-api"}
    assert not default.kinds("Ingress"), "off by default: nothing is exposed until TLS (or allowInsecure) is set"
    assert "sprout-settings" in default.kinds("ConfigMap") and "sprout-airflow-env" in default.kinds("ConfigMap")


def test_external_services_replace_the_bundled_ones(production: Render) -> None:
    assert not production.kinds("StatefulSet"), "managed PostgreSQL and S3: nothing bundled"
    assert set(production.kinds("Job")) == {"prod-sprout-init"}
    settings = production.get("ConfigMap", "prod-sprout-settings")["data"]
    assert settings["SPROUT_S3_ENDPOINT"] == "s3.eu-west-1.amazonaws.com" and settings["SPROUT_S3_SECURE"] == "true"
    assert settings["SPROUT_S3_REGION"] == "eu-west-1" and settings["SPROUT_S3_BUCKET"] == "acme-sprout-samples"
    mlflow = production.get("Deployment", "prod-sprout-mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert "s3://acme-sprout-mlflow/mlartifacts" in mlflow["command"]
    assert "MLFLOW_S3_ENDPOINT_URL" not in {e["name"] for e in mlflow["env"]}  # AWS S3: the SDK's default
    images = {c["image"] for _, spec in production.pod_specs() for c in spec["containers"]}
    registry = "registry.example.com/sprout"
    assert images == {f"{registry}/sprout-{name}:0.1.0" for name in ("api", "streamlit", "mlflow")}


# --------------------------------------------------------------------------- the chart's promises


@pytest.mark.parametrize("which", ["default", "production"])
def test_secrets_are_referenced_never_inlined(which: str, request: pytest.FixtureRequest) -> None:
    render: Render = request.getfixturevalue(which)
    assert not render.kinds("Secret"), "the chart must not create Secrets"
    allowed = {render.merged["secrets"]["existingSecret"], render.merged["mlflow"]["existingSecret"],
               render.merged["postgresql"]["existingSecret"], render.merged["objectStorage"]["minio"]["existingSecret"],
               render.merged["rateLimits"]["existingSecret"]}
    for owner, spec in render.pod_specs():
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in allowed, owner
            for env in container.get("env", []):
                if "value" in env:
                    assert not SECRET_ENV.search(env["name"]), f"{owner}: {env['name']} has a literal value"
                elif "secretKeyRef" in env.get("valueFrom", {}):
                    assert env["valueFrom"]["secretKeyRef"]["name"] in allowed, owner
    for name, config in render.kinds("ConfigMap").items():
        for key in config.get("data", {}):
            assert not SECRET_ENV.search(key), f"ConfigMap {name} carries {key}"


def test_api_probes_autoscaling_and_scrape_annotations(default: Render) -> None:
    deployment = default.get("Deployment", "sprout-api")
    pod = deployment["spec"]["template"]
    [api] = pod["spec"]["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["ports"][0]["containerPort"] == 8000 and api["command"][:2] == ["uvicorn", "api.main:app"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = default.get("HorizontalPodAutoscaler", "sprout-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sprout-api"}
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert api["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"
    service = default.get("Service", "sprout-api")
    for scrape in (pod["metadata"]["annotations"], service["metadata"]["annotations"]):
        assert scrape["prometheus.io/scrape"] == "true"
        assert scrape["prometheus.io/port"] == "8000" and scrape["prometheus.io/path"] == "/metrics"
    assert [e["configMapRef"]["name"] for e in api["envFrom"]] == ["sprout-settings"]  # secrets: by key, see below


@pytest.mark.parametrize("which", ["default", "production"])
def test_workloads_are_hardened_and_sized(which: str, request: pytest.FixtureRequest) -> None:
    render: Render = request.getfixturevalue(which)
    for owner, spec in render.pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, owner
        assert spec.get("automountServiceAccountToken") is False, owner
        for container in spec["containers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], owner
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, owner
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], owner


@pytest.mark.parametrize("which", ["default", "production"])
def test_services_select_pods_and_ingress_routes_to_services(which: str, request: pytest.FixtureRequest) -> None:
    render: Render = request.getfixturevalue(which)
    workloads = [o for o in render.objects if o["kind"] in ("Deployment", "StatefulSet")]
    services = render.kinds("Service")
    for name, service in services.items():
        selector = service["spec"]["selector"]
        targets = [w for w in workloads if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(targets) == 1, f"Service {name} selects {len(targets)} workloads"
        ports = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name
    for ingress in render.kinds("Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["port"]["number"] in {p["port"] for p in services[backend["name"]]["spec"]["ports"]}
    streamlit = render.get("Deployment", f"{render.release}-sprout-streamlit" if render.release != "sprout"
                           else "sprout-streamlit")["spec"]["template"]["spec"]["containers"][0]
    url = {e["name"]: e["value"] for e in streamlit["env"]}["SPROUT_API_URL"]
    host, port = url.removeprefix("http://").split(":")
    assert host in services and int(port) in {p["port"] for p in services[host]["spec"]["ports"]}


def test_gpu_values_expose_the_ui_and_the_api_with_tls(production: Render) -> None:
    [ingress] = production.kinds("Ingress").values()
    hosts = {r["host"]: r["http"]["paths"][0]["backend"]["service"]["name"] for r in ingress["spec"]["rules"]}
    assert hosts == {"sprout.example.com": "prod-sprout-streamlit", "api.sprout.example.com": "prod-sprout-api"}
    assert ingress["spec"]["ingressClassName"] == "nginx" and ingress["spec"]["tls"][0]["secretName"] == "sprout-tls"
    command = production.get("Deployment", "prod-sprout-mlflow")["spec"]["template"]["spec"]["containers"][0]["command"]
    allowed = command[command.index("--allowed-hosts") + 1].split(",")
    assert "prod-sprout-mlflow:5000" in allowed and not any("example.com" in host for host in allowed)


@pytest.mark.parametrize("which", ["default", "production"])
def test_settings_configmap_holds_real_settings(which: str, request: pytest.FixtureRequest) -> None:
    render: Render = request.getfixturevalue(which)
    name = "sprout-settings" if render.release == "sprout" else f"{render.release}-sprout-settings"
    data = render.get("ConfigMap", name)["data"]
    fields = {f"SPROUT_{f.upper()}" for f in Settings.model_fields}
    assert set(data) <= fields, set(data) - fields
    values: dict[str, Any] = {k.removeprefix("SPROUT_").lower(): v for k, v in data.items()}
    values |= {"secret_key": "x" * 40, "s3_access_key": "k", "s3_secret_key": "s" * 30}
    settings = Settings(**values)
    assert settings.env == "production" and settings.mlflow_tracking_uri
    if render.release == "sprout":
        assert data["SPROUT_S3_ENDPOINT"] == "sprout-minio:9000"
        assert data["SPROUT_MLFLOW_TRACKING_URI"] == "http://sprout-mlflow:5000"


def test_grafana_dashboards_are_the_monitoring_dashboards(default: Render) -> None:
    """One ConfigMap per file of monitoring/grafana/dashboards, with the sidecar label, the file unchanged:
    the panels' PromQL is the one the monitoring tests run against a real Prometheus."""
    files = dashboard_files()
    configmaps = [c for c in default.kinds("ConfigMap").values()
                  if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(configmaps) == len(files)
    data = {key: value for c in configmaps for key, value in c["data"].items()}
    for path in files:
        assert path.name in data, f"{path.name} is not in a dashboard ConfigMap"
        assert data[path.name].rstrip("\n") == path.read_text().rstrip("\n")
        assert json.loads(data[path.name]) == json.loads(path.read_text())
    assert all(c["metadata"]["annotations"]["grafana_folder"] == "Sprout" for c in configmaps)
    assert (CHART / "dashboards").resolve() == (REPO_ROOT / "monitoring" / "grafana" / "dashboards").resolve()


def test_bundled_postgres_runs_the_compose_init_script(default: Render) -> None:
    init = default.get("ConfigMap", "sprout-postgresql-init")["data"]["10-sprout-databases.sh"]
    assert init.strip() == (DOCKER / "postgres" / "init-databases.sh").read_text().strip()
    [container] = default.get("StatefulSet", "sprout-postgresql")["spec"]["template"]["spec"]["containers"]
    assert {"mountPath": "/docker-entrypoint-initdb.d", "name": "init", "readOnly": True} in container["volumeMounts"]


def test_notes_tell_how_to_reach_the_ui(default: Render, production: Render) -> None:
    assert "port-forward svc/sprout-streamlit 8501:8501" in default.notes
    assert "sprout.example.com" not in default.notes  # no Ingress by default
    assert "https://sprout.example.com/" in production.notes
    assert "nvidia.com/gpu: 1" in production.notes


# --------------------------------------------------------------------------- secrets of gen-env.sh --k8s


def test_generated_secrets_cover_every_reference(default: Render, k8s_secrets: Path) -> None:
    secrets = {s["metadata"]["name"]: s for s in load_yaml_all(k8s_secrets.read_text())}
    kubernetes_validate([k8s_secrets])
    assert all(s["metadata"]["namespace"] == NAMESPACE and s["kind"] == "Secret" for s in secrets.values())
    for owner, spec in default.pod_specs():
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, owner
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], f"{owner}: {ref}"
    sprout = secrets["sprout-env"]["stringData"]
    assert set(sprout) >= {"SPROUT_DATABASE_URL", "SPROUT_S3_ACCESS_KEY", "SPROUT_S3_SECRET_KEY", "SPROUT_SECRET_KEY",
                           "SPROUT_AIRFLOW_PASSWORD", "SPROUT_REVIEWER_USERNAME", "SPROUT_REVIEWER_PASSWORD"}
    postgres = secrets["sprout-postgresql"]["stringData"]
    assert f"sprout:{postgres['SPROUT_DB_PASSWORD']}@sprout-postgresql:5432/sprout" in sprout["SPROUT_DATABASE_URL"]
    mlflow = secrets["sprout-mlflow"]["stringData"]
    assert f"mlflow:{postgres['MLFLOW_DB_PASSWORD']}@sprout-postgresql:5432/mlflow" in \
        mlflow["MLFLOW_BACKEND_STORE_URI"]
    assert f"airflow:{postgres['AIRFLOW_DB_PASSWORD']}@sprout-postgresql:5432/airflow" in \
        secrets["sprout-airflow-metadata"]["stringData"]["connection"]
    assert secrets["sprout-airflow-user"]["stringData"]["password"] == sprout["SPROUT_AIRFLOW_PASSWORD"]
    # Sprout's MLflow login is the admin the MLflow server creates on its first start
    assert (sprout["MLFLOW_TRACKING_USERNAME"], sprout["MLFLOW_TRACKING_PASSWORD"]) == \
           (mlflow["MLFLOW_AUTH_ADMIN_USERNAME"], mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"])
    assert len(mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"]) >= 24 and len(mlflow["MLFLOW_FLASK_SERVER_SECRET_KEY"]) >= 32
    other = k8s_secrets.with_name("other.yaml")
    run([str(GEN_ENV), "--k8s", "sprout", "-o", str(other)])
    again = {s["metadata"]["name"]: s["stringData"] for s in load_yaml_all(other.read_text())}
    assert again["sprout-mlflow"]["MLFLOW_AUTH_ADMIN_PASSWORD"] != mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert again["sprout-mlflow"]["MLFLOW_FLASK_SERVER_SECRET_KEY"] != mlflow["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    Settings(**{k.removeprefix("SPROUT_").lower(): v for k, v in sprout.items()
                if k.removeprefix("SPROUT_").lower() in Settings.model_fields}, env="production",
             s3_endpoint="sprout-minio:9000")
    assert set(secrets["sprout-minio"]["stringData"]) == {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    proc = run([str(GEN_ENV), "--k8s", "sprout", "-o", str(k8s_secrets)], check=False)
    assert proc.returncode != 0 and "not overwritten" in proc.stderr


def test_airflow_values_fit_the_chart_and_the_secrets(default: Render, k8s_secrets: Path) -> None:
    values = load_yaml(AIRFLOW_VALUES)
    secrets = {s["metadata"]["name"] for s in load_yaml_all(k8s_secrets.read_text())}
    [source] = yaml.safe_load(values["extraEnvFrom"])
    assert source["configMapRef"]["name"] in default.kinds("ConfigMap")
    assert values["data"]["metadataSecretName"] in secrets and values["fernetKeySecretName"] in secrets
    assert values["images"]["airflow"]["repository"] == "sprout-airflow" and values["postgresql"]["enabled"] is False
    dockerfile = (DOCKER / "airflow.Dockerfile").read_text()
    assert f"apache/airflow:{values['airflowVersion']}-python3.11" in dockerfile
    role = default.get("RoleBinding", "sprout-airflow-pods")
    assert {s["name"] for s in role["subjects"]} == {"airflow-scheduler", "airflow-worker"}
    rules = default.get("Role", "sprout-airflow-pods")["rules"]
    assert any("pods/exec" in r["resources"] for r in rules)  # the XCom sidecar is read through exec


def test_the_api_logs_in_to_airflow_as_its_own_trigger_user(default: Render, k8s_secrets: Path) -> None:
    """Airflow's chart runs Sprout's auth manager with two users: the admin and the API's login (the chart's
    SPROUT_AIRFLOW_USERNAME), a viewer that may also start Sprout's DAGs and announce approvals. The api-server
    copies both passwords from sprout-airflow-user's passwords.json, where the API's is its SPROUT_AIRFLOW_PASSWORD."""
    values = load_yaml(AIRFLOW_VALUES)
    secrets = {s["metadata"]["name"]: s["stringData"] for s in load_yaml_all(k8s_secrets.read_text())}
    api_user = default.get("ConfigMap", "sprout-settings")["data"]["SPROUT_AIRFLOW_USERNAME"]
    core = values["config"]["core"]
    assert core["auth_manager"] == AUTH_MANAGER
    assert dict(u.split(":") for u in core["simple_auth_manager_users"].split(",")) == \
        {"admin": "admin", api_user: "viewer"}
    assert values["config"]["sprout"]["trigger_users"] == api_user != "admin"
    users = secrets["sprout-airflow-user"]
    assert json.loads(users["passwords.json"]) == {"admin": users["admin-password"],
                                                   api_user: secrets["sprout-env"]["SPROUT_AIRFLOW_PASSWORD"]}
    assert users["admin-password"] != users["password"] and users["username"] == api_user
    server = values["apiServer"]
    [volume] = [v for v in server["extraVolumes"] if v.get("secret", {}).get("secretName") == "sprout-airflow-user"]
    assert [i["key"] for i in volume["secret"]["items"]] == ["passwords.json"]
    [mount] = [m for m in server["extraVolumeMounts"] if m["name"] == volume["name"]]
    copy = f"{mount['mountPath']}/passwords.json {core['simple_auth_manager_passwords_file']}"
    assert copy in server["args"][-1] and server["args"][-1].endswith("exec airflow api-server")



# --------------------------------------------------------------------------- exposure: MLflow, NetworkPolicies, MinIO


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects a pod with these labels."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if (operator == "Exists" and key not in labels) or (operator == "DoesNotExist" and key in labels) \
                or (operator == "In" and labels.get(key) not in values) \
                or (operator == "NotIn" and key in labels and labels[key] in values):
            return False
    return True


def cluster_pods(render: Render) -> dict[str, tuple[str, dict[str, str]]]:
    """The pods a cluster would run, by who they are: (namespace, labels). The chart's own (by component), the
    DAGs' training pods (labels of dags/sprout_dag_support/pods.py, checked against the real DAGs in
    test_training_task_is_a_gpu_pod_on_the_nodes_from_values), the official Airflow chart's pods, and strangers:
    another app, and a pod in another namespace that copies the API's labels."""
    pods: dict[str, tuple[str, dict[str, str]]] = {}
    for o in render.objects:
        if o["kind"] in ("Deployment", "StatefulSet", "Job"):
            labels = o["spec"]["template"]["metadata"]["labels"]
            pods[labels["app.kubernetes.io/component"]] = (NAMESPACE, labels)
    airflow_namespace = render.merged["airflow"]["namespace"] or NAMESPACE
    pods["trainer"] = (NAMESPACE, {"app.kubernetes.io/part-of": "sprout", "sprout/task": "train-candidate"})
    pods["airflow"] = (airflow_namespace, {"tier": "airflow", "component": "scheduler", "release": "airflow"})
    pods["other-app"] = (NAMESPACE, {"app": "something-else"})
    pods["api-lookalike"] = ("elsewhere", dict(pods["api"][1]))
    return pods


def peer_selects(peer: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicy `from` entry (of a policy in NAMESPACE) admits a pod. No ipBlock allowed."""
    assert "ipBlock" not in peer, f"an ipBlock peer: {peer}"
    assert "podSelector" in peer, f"a peer without a podSelector admits whole namespaces: {peer}"
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
            return False
    elif namespace != NAMESPACE:
        return False
    return selects(peer["podSelector"], labels)


# Who reaches each store: the API and the training pods; MinIO also MLflow (artifacts) and its init Job;
# PostgreSQL also MLflow, the init Job (migrations) and Airflow (its metadata database).
STORE_CLIENTS = {"mlflow": ({"api", "trainer"}, 5000),
                 "minio": ({"api", "trainer", "mlflow", "minio-init"}, 9000),
                 "postgresql": ({"api", "trainer", "mlflow", "init", "airflow"}, 5432)}


@pytest.mark.parametrize("which", ["default", "production", "airflow_elsewhere"])
def test_network_policies_let_only_their_clients_reach_mlflow_minio_and_postgres(
        which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """One NetworkPolicy per store that the release runs, selecting its pods, with an ingress rule whose `from`
    admits exactly the store's clients (the API, the training pods, and Airflow for PostgreSQL) on the store's
    port: not Streamlit, not another app, not a look-alike in another namespace."""
    if which == "airflow_elsewhere":
        render = Render({"airflow": {"namespace": "airflow"}}, "sprout", tmp_path)
    else:
        render = request.getfixturevalue(which)
    pods = cluster_pods(render)
    policies = render.kinds("NetworkPolicy")
    stores = {c for c in ("mlflow", "minio", "postgresql") if c in pods}
    assert stores == ({"mlflow"} if which == "production" else {"mlflow", "minio", "postgresql"})
    for store in stores:
        selecting = [p for p in policies.values() if selects(p["spec"]["podSelector"], pods[store][1])]
        assert len(selecting) == 1, f"{store}: {len(selecting)} NetworkPolicies select its pods"
        [policy] = selecting
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"] and spec["podSelector"]["matchLabels"]
        clients, port = STORE_CLIENTS[store]
        admitted: set[str] = set()
        for rule in spec["ingress"]:
            assert rule.get("from"), f"{store}: a rule without `from` admits everyone"
            assert rule.get("ports") == [{"port": port, "protocol": "TCP"}], f"{store}: {rule.get('ports')}"
            for peer in rule["from"]:
                admitted |= {name for name, (ns, labels) in pods.items() if peer_selects(peer, ns, labels)}
        assert admitted == clients, f"{store}: admits {sorted(admitted)}, not {sorted(clients)}"
    for name in ("streamlit", "other-app", "api-lookalike"):  # no policy admits them anywhere
        assert not any(peer_selects(peer, *pods[name]) for p in policies.values() for rule in p["spec"]["ingress"]
                       for peer in rule["from"]), name
    if which == "airflow_elsewhere":
        [airflow_peer] = [peer for rule in policies["sprout-postgresql"]["spec"]["ingress"] for peer in rule["from"]
                          if "namespaceSelector" in peer]
        assert airflow_peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "airflow"}}


def test_network_policies_can_be_turned_off_or_widened(tmp_path: Path) -> None:
    """networkPolicy.enabled: false renders none; extraFrom adds a peer (e.g. an ingress controller) to one store."""
    off = Render({"networkPolicy": {"enabled": False}}, "sprout", tmp_path / "off")
    assert not off.kinds("NetworkPolicy")
    controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                  "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}}
    wide = Render({"networkPolicy": {"extraFrom": {"mlflow": [controller]}}}, "sprout", tmp_path / "wide")
    assert controller in wide.get("NetworkPolicy", "sprout-mlflow")["spec"]["ingress"][0]["from"]
    assert controller not in wide.get("NetworkPolicy", "sprout-minio")["spec"]["ingress"][0]["from"]
    kubernetes_validate(wide.files)
    sdk = require_helm()
    for emptied in ({"trainerPodSelector": None}, {"airflowPodSelector": {"matchLabels": None}},
                    {"trainerPodSelector": {"matchLabels": None, "matchExpressions": None}}):
        report = sdk.lint(CHART, {"networkPolicy": emptied}, strict=True)
        assert report["errors"], f"{emptied}: an empty pod selector (every pod of the namespace) must be refused"


def test_ingress_is_off_by_default_and_refuses_to_render_without_tls(tmp_path: Path) -> None:
    """Passwords, tokens and the session cookie cross the Ingress: with a host that no ingress.tls entry covers
    the chart fails to render, naming the host and the way out, unless ingress.allowInsecure waives it."""
    refused = require_helm().HelmRenderError
    assert load_yaml(CHART / "values.yaml")["ingress"]["enabled"] is False
    on: dict[str, Any] = {"enabled": True}
    with pytest.raises(refused, match=r'host "sprout.example.com" has no TLS.*ingress.allowInsecure=true'):
        Render({"ingress": on}, "sprout", tmp_path / "plain")
    only_ui = [{"secretName": "ui-tls", "hosts": ["sprout.example.com"]}]
    with pytest.raises(refused, match=r'host "api.sprout.example.com" has no TLS'):
        Render({"ingress": {**on, "tls": only_ui}}, "sprout", tmp_path / "half")
    wildcard = [{"secretName": "tls", "hosts": ["*.sprout.example.com", "sprout.example.com"]}]
    [ingress] = Render({"ingress": {**on, "tls": wildcard}}, "sprout", tmp_path / "tls").kinds("Ingress").values()
    assert ingress["spec"]["tls"] == wildcard
    waived = Render({"ingress": {**on, "allowInsecure": True}}, "sprout", tmp_path / "waived")
    [ingress] = waived.kinds("Ingress").values()
    assert "tls" not in ingress["spec"] and "WARNING: the Ingress has no TLS" in waived.notes
    # no api.trustedProxies: every client behind the controller shares its address's limits, and the notes say so
    assert "WARNING: api.trustedProxies is empty" in waived.notes and "externalTrafficPolicy: Local" in waived.notes


def routed(path: str, prefixes: list[str]) -> bool:
    """Whether an Ingress path of pathType Prefix routes ``path`` (element-wise, as Kubernetes matches)."""
    return any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in prefixes)


def test_ingress_routes_only_the_apis_public_routes(production: Render, tmp_path: Path) -> None:
    """Of the API's routes the Ingress routes every public one, never /metrics (Prometheus scrapes the pods), the
    probes or the UI's /events, and the OpenAPI docs only with ingress.api.docs; the UI gets all of Streamlit."""
    from api.main import create_app

    app = create_app(Settings(_env_file=None, home=tmp_path))  # type: ignore[call-arg]
    routes = set(app.openapi()["paths"]) | {"/metrics"}  # /metrics is left out of the schema
    internal = {"/metrics", "/healthz", "/readyz", "/events"}
    # /docs, /redoc (app.docs_url and app.redoc_url are None: fastapi-offline serves them), their assets, the schema
    docs = {path for route in app.routes if (path := getattr(route, "path", None)) and path not in routes}
    assert {"/docs", "/redoc", "/docs/assets", "/openapi.json"} <= docs
    docs.add("/docs/assets/swagger-ui-bundle.js")
    routes |= docs

    def paths(render: Render) -> dict[str, list[str]]:
        [ingress] = render.kinds("Ingress").values()
        return {rule["host"]: [p["path"] for p in rule["http"]["paths"]] for rule in ingress["spec"]["rules"]}

    exposed = paths(production)
    assert exposed["sprout.example.com"] == ["/"]
    assert {r for r in routes if not routed(r, exposed["api.sprout.example.com"])} == internal | docs
    values = load_yaml(CHART_CI_VALUES)
    values["ingress"]["api"]["docs"] = True
    with_docs = paths(Render(values, "prod", tmp_path / "docs"))["api.sprout.example.com"]
    assert {r for r in routes if not routed(r, with_docs)} == internal


def mlflow_ingress_hosts(render: Render) -> list[str]:
    mlflow = f"{render.release}-sprout-mlflow" if render.release != "sprout" else "sprout-mlflow"
    return [rule["host"] for ingress in render.kinds("Ingress").values() for rule in ingress["spec"]["rules"]
            if rule["http"]["paths"][0]["backend"]["service"]["name"] == mlflow]


def test_mlflow_is_not_on_the_ingress_unless_asked_for(default: Render, production: Render, tmp_path: Path) -> None:
    """Neither the default nor the CI values put MLflow on the Ingress; a host alone does not either; only
    ingress.mlflow.enabled (false by default, with a warning in values.yaml) does."""
    assert not mlflow_ingress_hosts(default) and not mlflow_ingress_hosts(production)
    for values in (default.merged, production.merged, load_yaml(CHART / "values.yaml")):
        assert values["ingress"]["mlflow"]["enabled"] is False
    assert "mlflow" not in load_yaml(CHART_CI_VALUES)["ingress"]
    documented = (CHART / "values.yaml").read_text().split("  mlflow:\n    enabled: false")[0].rsplit("ui:", 1)[1]
    assert "WARNING" in documented, "values.yaml must warn above ingress.mlflow"
    host_only = Render({"ingress": {"mlflow": {"host": "mlflow.example.com"}}}, "sprout", tmp_path / "host")
    assert not mlflow_ingress_hosts(host_only)
    asked = Render({"ingress": {"enabled": True, "tls": [{"secretName": "sprout-tls"}],
                                "mlflow": {"enabled": True, "host": "mlflow.example.com"}}}, "sprout", tmp_path / "on")
    assert mlflow_ingress_hosts(asked) == ["mlflow.example.com"] and "WARNING: MLflow is exposed" in asked.notes


@pytest.mark.parametrize("which", ["default", "production"])
def test_mlflow_runs_its_basic_auth_app(which: str, request: pytest.FixtureRequest) -> None:
    """`mlflow server --app-name basic-auth` through the image's wrapper, its admin, CSRF key and store from the
    MLflow Secret only (none on the command line, none in the chart), the auth file on the writable /tmp."""
    render: Render = request.getfixturevalue(which)
    name = "sprout-mlflow" if render.release == "sprout" else f"{render.release}-sprout-mlflow"
    pod = render.get("Deployment", name)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["command"]
    assert command[:3] == ["mlflow-basic-auth", "mlflow", "server"], command
    assert command[command.index("--app-name") + 1] == "sprout-basic-auth"  # basic-auth + the artifact rule
    assert "--backend-store-uri" not in command and not any("$(" in word for word in command)
    assert container["envFrom"] == [{"secretRef": {"name": render.merged["mlflow"]["existingSecret"]}}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert not {"MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} & set(env), "literal MLflow secrets"
    config = env["MLFLOW_AUTH_CONFIG_PATH"]
    assert config and any(config.startswith(m["mountPath"] + "/") for m in container["volumeMounts"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    for probe in ("livenessProbe", "readinessProbe"):  # the one route the auth app leaves open
        assert container[probe]["httpGet"]["path"] == "/health"


def test_registry_clients_get_the_mlflow_login(default: Render, k8s_secrets: Path) -> None:
    """The training pods (the keys SPROUT_K8S_SECRET_KEYS names) and the init Job log in to MLflow as its admin; the
    API as its own user (MLFLOW_API_*: serving's grants, made by the init Job); Streamlit gets nothing."""
    sprout = {s["metadata"]["name"]: s for s in load_yaml_all(k8s_secrets.read_text())}["sprout-env"]["stringData"]
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(sprout)
    airflow_env = default.get("ConfigMap", "sprout-airflow-env")["data"]
    assert airflow_env["SPROUT_K8S_ENV_SECRET"] == "sprout-env"
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(dag_secret_keys(airflow_env))
    [api] = default.get("Deployment", "sprout-api")["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    for name, key in {"MLFLOW_TRACKING_USERNAME": "MLFLOW_API_USERNAME",
                      "MLFLOW_TRACKING_PASSWORD": "MLFLOW_API_PASSWORD"}.items():
        assert refs[name] == {"name": "sprout-env", "key": key}, refs.get(name)  # required: not optional
    assert sprout["MLFLOW_API_USERNAME"] != sprout["MLFLOW_TRACKING_USERNAME"]
    [init] = default.get("Job", "sprout-init")["spec"]["template"]["spec"]["containers"]
    init_keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in init["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_API_USERNAME", "MLFLOW_API_PASSWORD"} \
        <= init_keys
    [streamlit] = default.get("Deployment", "sprout-streamlit")["spec"]["template"]["spec"]["containers"]
    assert "envFrom" not in streamlit and all("valueFrom" not in e for e in streamlit["env"])


# (Secret, key) pairs each workload may get; `*` means every key of that Secret (envFrom).
SECRETS_OF = {
    "api": {("sprout-env", k) for k in ("SPROUT_DATABASE_URL", "SPROUT_S3_ACCESS_KEY", "SPROUT_S3_SECRET_KEY",
                                        "SPROUT_SECRET_KEY", "SPROUT_AIRFLOW_PASSWORD", "MLFLOW_API_USERNAME",
                                        "MLFLOW_API_PASSWORD")},
    "init": {("sprout-env", k) for k in ("SPROUT_DATABASE_URL", "SPROUT_S3_ACCESS_KEY", "SPROUT_S3_SECRET_KEY",
                                         "SPROUT_REVIEWER_USERNAME", "SPROUT_REVIEWER_PASSWORD",
                                         "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_API_USERNAME",
                                         "MLFLOW_API_PASSWORD")},
    "streamlit": set(),
    "mlflow": {("sprout-mlflow", k) for k in ("MLFLOW_BACKEND_STORE_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                              "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
                                              "MLFLOW_FLASK_SERVER_SECRET_KEY")},
    "postgresql": {("sprout-postgresql", k) for k in ("POSTGRES_PASSWORD", "SPROUT_DB_PASSWORD", "MLFLOW_DB_PASSWORD",
                                                      "AIRFLOW_DB_PASSWORD")},
    "minio": {("sprout-minio", "MINIO_ROOT_USER"), ("sprout-minio", "MINIO_ROOT_PASSWORD")},
    "minio-init": {("sprout-minio", "MINIO_ROOT_USER"), ("sprout-minio", "MINIO_ROOT_PASSWORD"),
                   ("sprout-env", "SPROUT_S3_ACCESS_KEY"), ("sprout-env", "SPROUT_S3_SECRET_KEY"),
                   ("sprout-mlflow", "AWS_ACCESS_KEY_ID"), ("sprout-mlflow", "AWS_SECRET_ACCESS_KEY")},
    "redis": {("sprout-redis", "REDIS_PASSWORD")},
}
# ... and the API's rate-limit store: the bundled Valkey's password, or the URL of yours (rateLimits.bundled false).
RATE_LIMIT_SECRETS = {"default": {("sprout-redis", "REDIS_PASSWORD")},
                      "production": {("sprout-env", "SPROUT_RATE_LIMIT_STORAGE")}}


# What the DAGs' task pods get of Sprout's Secret (secretKeyRef, from SPROUT_K8S_SECRET_KEYS): the database, the
# bucket's key and MLflow's login; never the API's token-signing key (SPROUT_SECRET_KEY) or its Airflow password.
TRAINER_SECRETS = {("sprout-env", k) for k in ("SPROUT_DATABASE_URL", "SPROUT_S3_ACCESS_KEY", "SPROUT_S3_SECRET_KEY",
                                               "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}


def dag_secret_keys(airflow_env: dict[str, str]) -> dict[str, bool]:
    """Key → optional, of SPROUT_K8S_SECRET_KEYS as dags/sprout_dag_support/settings.py reads it (`KEY?`: optional)."""
    words = [w for w in re.split(r"[,\s]+", airflow_env["SPROUT_K8S_SECRET_KEYS"]) if w]
    keys = {w.removesuffix("?"): w.endswith("?") for w in words}
    assert len(keys) == len(words), f"a key twice: {words}"
    return keys


@pytest.mark.parametrize("which", ["default", "production", "external_mlflow"])
def test_airflow_env_names_the_secret_keys_the_task_pods_get(which: str, request: pytest.FixtureRequest,
                                                            k8s_secrets: Path, tmp_path: Path) -> None:
    """The airflow-env ConfigMap says which Secret and which of its keys the DAGs give the task pods: the
    trainer's keys, each one the chart's Secret has (as gen-env.sh --k8s writes it), never the reviewer's or the
    Airflow password. MLflow's login is required when the chart runs MLflow, optional with an external one."""
    if which == "external_mlflow":
        render = Render({"mlflow": {"enabled": False, "externalTrackingUri": "https://mlflow.example.com"}},
                        "sprout", tmp_path / "external-mlflow")
    else:
        render = request.getfixturevalue(which)
    prefix = "sprout" if render.release == "sprout" else f"{render.release}-sprout"
    env = render.get("ConfigMap", f"{prefix}-airflow-env")["data"]
    secret = render.merged["secrets"]["existingSecret"]
    assert env["SPROUT_K8S_ENV_SECRET"] == secret
    assert env["SPROUT_K8S_ENV_CONFIGMAP"] == f"{prefix}-settings"
    keys = dag_secret_keys(env)
    assert {(secret, k) for k in keys} == TRAINER_SECRETS
    generated = {s["metadata"]["name"]: set(s["stringData"]) for s in load_yaml_all(k8s_secrets.read_text())}
    assert set(keys) <= generated["sprout-env"], f"not in the Secret: {sorted(set(keys) - generated['sprout-env'])}"
    mlflow_login = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    assert {k for k, optional in keys.items() if optional} == (set() if render.merged["mlflow"]["enabled"]
                                                               else mlflow_login)


@pytest.mark.parametrize("which", ["default", "production"])
def test_each_workload_gets_only_the_secrets_it_uses(which: str, request: pytest.FixtureRequest,
                                                     k8s_secrets: Path) -> None:
    """The (Secret, key) pairs that reach each Deployment, StatefulSet and Job: a whole Secret (envFrom) counts
    as all of its keys as gen-env.sh --k8s writes them. The API gets no reviewer or MinIO root password, the init
    Job no MLflow login, Streamlit nothing, MLflow only its own Secret."""
    render: Render = request.getfixturevalue(which)
    generated = {s["metadata"]["name"]: set(s["stringData"]) for s in load_yaml_all(k8s_secrets.read_text())}
    seen = set()
    for o in render.objects:
        if o["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        spec = o["spec"]["template"]["spec"]
        component = o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        seen.add(component)
        got = set()
        for container in spec["containers"] + spec.get("initContainers", []):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    got |= {(source["secretRef"]["name"], key) for key in generated[source["secretRef"]["name"]]}
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    got.add((ref["name"], ref["key"]))
        for volume in spec.get("volumes", []):
            assert "secret" not in volume and "projected" not in volume, f"{component}: mounts a Secret"
        expected = SECRETS_OF[component] | (RATE_LIMIT_SECRETS[which] if component == "api" else set())
        assert got == expected, f"{component}: extra {sorted(got - expected)}, missing {sorted(expected - got)}"
    assert seen == (set(SECRETS_OF) if which == "default" else {"api", "init", "streamlit", "mlflow"})


def test_api_pods_share_their_rate_limits_and_believe_only_trusted_proxies(default: Render, production: Render) -> None:
    """The API pods count rate limits in the bundled Valkey (its password from its own Secret, in a config file, not
    on a command line; only the API pods may connect) or in the Redis that SPROUT_RATE_LIMIT_STORAGE of Sprout's
    Secret names. uvicorn reads no forwarded headers itself: the API believes them from api.trustedProxies only
    (default: none), and the Streamlit pods from the same proxies (so that they forward each browser's address, not
    the ingress's)."""
    [api] = default.get("Deployment", "sprout-api")["spec"]["template"]["spec"]["containers"]
    assert "--no-proxy-headers" in api["command"] and "--proxy-headers" not in api["command"]
    names = [e["name"] for e in api["env"]]
    password = api["env"][names.index("REDIS_PASSWORD")]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "sprout-redis", "key": "REDIS_PASSWORD"}
    storage = api["env"][names.index("SPROUT_RATE_LIMIT_STORAGE")]
    assert storage["value"] == "redis://:$(REDIS_PASSWORD)@sprout-redis:6379/0"
    assert names.index("REDIS_PASSWORD") < names.index("SPROUT_RATE_LIMIT_STORAGE")  # $(VAR) needs it defined first
    [valkey] = default.get("Deployment", "sprout-redis")["spec"]["template"]["spec"]["containers"]
    script = " ".join(valkey["command"] + valkey["args"])
    assert valkey["image"].startswith("valkey/valkey:") and "requirepass" in script and "appendonly no" in script
    assert [e["valueFrom"]["secretKeyRef"] for e in valkey["env"]] == [password]
    [rule] = default.get("NetworkPolicy", "sprout-redis")["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": default.get("Deployment", "sprout-api")["spec"]["selector"][
        "matchLabels"]}}] and rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    # the default trusts no proxy (as make up): any pod of the cluster could otherwise claim any address
    assert default.merged["api"]["trustedProxies"] == []
    assert default.get("ConfigMap", "sprout-settings")["data"]["SPROUT_TRUSTED_PROXIES"] == ""
    [ui] = default.get("Deployment", "sprout-streamlit")["spec"]["template"]["spec"]["containers"]
    assert {"name": "FORWARDED_ALLOW_IPS", "value": ""} in ui["env"]  # uvicorn: "" trusts nobody, not its default
    # with an Ingress, the operator names the proxies (the ci values: the pod network), and both pods believe them
    trusted = ",".join(production.values["api"]["trustedProxies"])
    assert production.get("ConfigMap", "prod-sprout-settings")["data"]["SPROUT_TRUSTED_PROXIES"] == trusted
    assert Settings(_env_file=None, trusted_proxies=trusted).trusted_proxy_list  # type: ignore[call-arg]
    [prod_ui] = production.get("Deployment", "prod-sprout-streamlit")["spec"]["template"]["spec"]["containers"]
    assert {"name": "FORWARDED_ALLOW_IPS", "value": trusted} in prod_ui["env"]
    assert "per-address limits" not in production.notes
    assert not {"prod-sprout-redis"} & (set(production.kinds("Deployment")) | set(production.kinds("Service")))
    [prod_api] = production.get("Deployment", "prod-sprout-api")["spec"]["template"]["spec"]["containers"]
    [own] = [e for e in prod_api["env"] if e["name"] == "SPROUT_RATE_LIMIT_STORAGE"]
    assert own["valueFrom"]["secretKeyRef"] == {"name": "sprout-env", "key": "SPROUT_RATE_LIMIT_STORAGE",
                                                "optional": True}


def test_minio_init_policies_are_bucket_scoped(default: Render, k8s_secrets: Path, tmp_path: Path) -> None:
    """The minio-init Job's script, run against a stubbed `mc` with the generated Secrets: Sprout's key reaches
    the sprout bucket only, MLflow's the mlflow bucket only, an old `readwrite` is detached; extra read-only
    buckets for Sprout (a seed data set) are read-only, and MLflow's bucket cannot be one."""
    secrets = {s["metadata"]["name"]: s["stringData"] for s in load_yaml_all(k8s_secrets.read_text())}

    def job_script(render: Render) -> tuple[str, dict[str, str]]:
        [mc] = render.get("Job", "sprout-minio-init")["spec"]["template"]["spec"]["containers"]
        assert mc["command"] == ["/bin/sh", "-ec"]
        env = {}
        for e in mc["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            env[e["name"]] = secrets[ref["name"]][ref["key"]] if ref else e["value"]
        return mc["args"][0], env

    keys = {"sprout_key": secrets["sprout-env"]["SPROUT_S3_ACCESS_KEY"],
            "mlflow_key": secrets["sprout-mlflow"]["AWS_ACCESS_KEY_ID"]}
    script, env = job_script(default)
    check_bucket_scoped_minio_init(script, env, tmp_path / "default", sprout_bucket="sprout", mlflow_bucket="mlflow",
                                   **keys)
    values = {"objectStorage": {"sproutBucket": "samples", "mlflowBucket": "runs",
                                "minio": {"sproutReadBuckets": ["seed"]}}, "mlflow": {"artifactsDestination": "s3://runs/a"}}
    custom = Render(values, "sprout", tmp_path / "custom-render")
    script, env = job_script(custom)
    policies = check_bucket_scoped_minio_init(script, env, tmp_path / "custom", sprout_bucket="samples",
                                              mlflow_bucket="runs", sprout_read=("seed",), **keys)
    written = {r for s in policies["sprout-bucket"]["Statement"] for r in s["Resource"]
               if any(a in ("s3:PutObject", "s3:DeleteObject") for a in s["Action"])}
    assert written == {"arn:aws:s3:::samples/*"}
    sdk = require_helm()
    for bad in ({"objectStorage": {"minio": {"sproutReadBuckets": ["mlflow"]}}},
                {"objectStorage": {"sproutBucket": "same", "mlflowBucket": "same"}}):
        with pytest.raises(Exception, match="MLflow's bucket|must differ"):
            sdk.Chart.load(CHART).render(bad, name="sprout", namespace=NAMESPACE)

# --------------------------------------------------------------------------- the DAGs' pods on Kubernetes


@pytest.mark.parametrize("which", ["default", "production"])
@pytest.mark.server  # Airflow's virtualenv
def test_training_task_is_a_gpu_pod_on_the_nodes_from_values(which: str, request: pytest.FixtureRequest,
                                                             tmp_path: Path) -> None:
    """Airflow parses the real DAGs with the chart's airflow-env ConfigMap; the Pods its KubernetesPodOperators
    would create are valid, get only the trainer's keys of Sprout's Secret (secretKeyRef, never its envFrom), and
    the training one asks for nvidia.com/gpu: 1 on the GPU nodes of the values."""
    render: Render = request.getfixturevalue(which)
    prefix = "sprout" if render.release == "sprout" else f"{render.release}-sprout"
    env = render.get("ConfigMap", f"{prefix}-airflow-env")["data"]
    assert AIRFLOW_PYTHON.is_file(), "the Airflow virtualenv is missing: make install"
    out = tmp_path / "pods.json"
    home = tmp_path / "airflow"
    home.mkdir()
    proc = subprocess.run(
        [str(AIRFLOW_PYTHON), str(Path(__file__).with_name("airflow_pods.py")), str(out)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "AIRFLOW_HOME": str(home),
             "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **env},
        cwd=home, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and out.is_file(), (proc.stdout + proc.stderr)[-5000:]
    result = json.loads(out.read_text())
    assert result["import_errors"] == {}
    assert {"sprout_retrain", "sprout_bootstrap", "sprout_batch_predict", "sprout_rollout"} <= set(result["dags"])
    schedule = render.merged["rollout"]["schedule"]
    assert result["schedules"]["sprout_rollout"] == env["SPROUT_ROLLOUT_SCHEDULE"] == schedule
    gpu = render.merged["training"]["gpu"]
    trainer_image = env["SPROUT_TRAINER_IMAGE"]
    trainer_peer = render.merged["networkPolicy"]["trainerPodSelector"]
    pod_files = []
    for dag_id, tasks in result["dags"].items():
        pods = {t: info["pod"] for t, info in tasks.items() if info["type"] == "KubernetesPodOperator"}
        trains = dag_id in ("sprout_retrain", "sprout_bootstrap")  # batch prediction and the judge run on CPU
        assert ("train_candidate" in pods) is trains, f"{dag_id}: the training task is not a KubernetesPodOperator"
        assert pods, f"{dag_id}: no pods"
        for task_id, pod in pods.items():
            spec = pod["spec"]
            # the NetworkPolicies let exactly these pods (the trainer's) reach MLflow, MinIO and PostgreSQL
            assert selects(trainer_peer, pod["metadata"]["labels"]), f"{dag_id}.{task_id}: {pod['metadata']['labels']}"
            [main] = [c for c in spec["containers"] if c["name"] == "base"]
            assert main["image"] == trainer_image and pod["metadata"]["namespace"] == NAMESPACE
            # the settings ConfigMap whole; of the Secret only the keys of SPROUT_K8S_SECRET_KEYS, by key
            assert main["envFrom"] == [{"configMapRef": {"name": f"{prefix}-settings"}}], f"{dag_id}.{task_id}"
            refs = [e["valueFrom"]["secretKeyRef"] for e in main["env"] if "secretKeyRef" in e.get("valueFrom", {})]
            assert {(r["name"], r["key"]) for r in refs} == TRAINER_SECRETS, f"{dag_id}.{task_id}: {refs}"
            assert {r["key"]: r.get("optional", False) for r in refs} == dag_secret_keys(env)
            assert all(e["name"] == e["valueFrom"]["secretKeyRef"]["key"] for e in main["env"] if "valueFrom" in e)
            for volume in spec.get("volumes", []):
                assert "secret" not in volume and "projected" not in volume, f"{dag_id}.{task_id}: mounts a Secret"
            assert spec["serviceAccountName"] == f"{prefix}-trainer"
            limits = main["resources"].get("limits", {})
            if task_id == "train_candidate":
                assert limits.get("nvidia.com/gpu") == "1", f"{dag_id}: {limits}"
                assert spec.get("nodeSelector", {}) == gpu["nodeSelector"]
                assert spec["tolerations"] == gpu["tolerations"]
            else:
                assert "nvidia.com/gpu" not in limits and not spec.get("nodeSelector"), f"{dag_id}.{task_id}"
            path = tmp_path / f"{dag_id}.{task_id}.json"
            path.write_text(json.dumps(pod))
            pod_files.append(path)
    kubernetes_validate(pod_files)


def test_streamlit_links_become_the_sidebars_public_urls(default: Render, tmp_path: Path) -> None:
    """streamlit.links: each URL set reaches the UI as SPROUT_<NAME>_PUBLIC_URL; none set, none passed."""
    def env(render: Render) -> dict[str, str]:
        container = render.get("Deployment", "sprout-streamlit")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e["value"] for e in container["env"] if "PUBLIC_URL" in e["name"]}

    assert env(default) == {}
    links = {"api": "https://sprout.example.org", "mlflow": "https://mlflow.example.org", "airflow": ""}
    linked = Render({"streamlit": {"links": links}}, "sprout", tmp_path)
    assert env(linked) == {
        "SPROUT_API_PUBLIC_URL": "https://sprout.example.org", "SPROUT_MLFLOW_PUBLIC_URL": "https://mlflow.example.org"}

    def api_settings(render: Render) -> dict[str, str]:  # the API links its retrain runs to MLflow and Airflow too
        data = next(c["data"] for c in render.kinds("ConfigMap").values() if "SPROUT_AIRFLOW_URL" in c.get("data", {}))
        return {k: v for k, v in data.items() if "PUBLIC_URL" in k}

    assert api_settings(default) == {}
    assert api_settings(linked) == {"SPROUT_MLFLOW_PUBLIC_URL": "https://mlflow.example.org"}


# --------------------------------------------------------------------------- webhooks


def secret_keys_of(spec: dict[str, Any]) -> set[str]:
    return {e["valueFrom"]["secretKeyRef"]["key"] for c in spec["containers"] for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}


def test_webhooks_add_the_url_and_their_secret_only_when_a_url_is_set(default: Render, tmp_path: Path) -> None:
    """webhooks.url puts SPROUT_WEBHOOK_URL in the settings and gives every container that loads them (the API, the
    init Job, the DAGs' training pods) SPROUT_WEBHOOK_SECRET from the Secret, required: Sprout refuses a URL
    without its secret. No URL, no secret is referenced."""
    url = "https://hooks.example.com/sprout"
    hooked = Render({"webhooks": {"url": url}}, "sprout", tmp_path / "hooks")
    assert hooked.get("ConfigMap", "sprout-settings")["data"]["SPROUT_WEBHOOK_URL"] == url
    keys = hooked.get("ConfigMap", "sprout-airflow-env")["data"]["SPROUT_K8S_SECRET_KEYS"].split(",")
    assert "SPROUT_WEBHOOK_SECRET" in keys  # required (no trailing ?)
    pods = dict(hooked.pod_specs())
    for owner in ("Deployment/sprout-api", "Job/sprout-init"):
        assert "SPROUT_WEBHOOK_SECRET" in secret_keys_of(pods[owner]), owner
        [ref] = [e["valueFrom"]["secretKeyRef"] for c in pods[owner]["containers"] for e in c.get("env", [])
                 if e["name"] == "SPROUT_WEBHOOK_SECRET"]
        assert ref == {"name": "sprout-env", "key": "SPROUT_WEBHOOK_SECRET"}  # required: no optional
    kubernetes_validate(hooked.files)
    assert "SPROUT_WEBHOOK_URL" not in default.get("ConfigMap", "sprout-settings")["data"]
    airflow_env = default.get("ConfigMap", "sprout-airflow-env")["data"]
    assert "SPROUT_WEBHOOK_SECRET" not in airflow_env["SPROUT_K8S_SECRET_KEYS"]
    assert all("SPROUT_WEBHOOK_SECRET" not in secret_keys_of(spec) for _, spec in default.pod_specs())
    with pytest.raises(require_helm().HelmValuesError):
        Render({"webhooks": {"url": "ftp://hooks.example.com/"}}, "x", tmp_path / "ftp")


# --------------------------------------------------------------------------- rollouts

RULE = {"minReviewed": 50, "minShadowed": 1000, "minMinutes": 30, "alpha": 0.01, "maxRegression": 0.03,
        "maxErrorRate": 0.02, "minErrorRequests": 40, "maxLatencyRatio": 2.0, "minLatencyRequests": 200,
        "timeoutHours": 72, "timeoutFallback": "promote", "maxObservations": 1_000_000, "metricsSeconds": 15}


def settings_of(render: Render) -> Settings:
    data = render.get("ConfigMap", "sprout-settings")["data"]
    values: dict[str, Any] = {k.removeprefix("SPROUT_").lower(): v for k, v in data.items()}
    return Settings(**values | {"secret_key": "x" * 40, "s3_access_key": "k", "s3_secret_key": "s" * 30})


def test_rollouts_default_to_shadow_judged_by_the_rollout_dag(default: Render, tmp_path: Path) -> None:
    """A passing candidate becomes the challenger in shadow by default (both shares set, the rule's thresholds
    Sprout's defaults), judged on the rollout DAG's schedule; every rollout.rule value reaches its SPROUT_ROLLOUT_*
    setting as set (integers as integers), and the schema names exactly the rule's settings."""
    data = default.get("ConfigMap", "sprout-settings")["data"]
    assert (data["SPROUT_ROLLOUT"], data["SPROUT_SHADOW_SHARE"], data["SPROUT_CANARY_SHARE"]) == ("shadow", "1", "0.1")
    assert not [k for k in data if k.startswith("SPROUT_ROLLOUT_")]  # unset: Sprout's defaults
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    production = settings_of(default)
    assert production.rollout == "shadow" and production.rollout_min_reviewed == defaults.rollout_min_reviewed
    assert default.get("ConfigMap", "sprout-airflow-env")["data"]["SPROUT_ROLLOUT_SCHEDULE"] == "*/5 * * * *"

    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["rollout"]["properties"]
    snake = {re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in schema["rule"]["properties"]}
    assert {f"rollout_{name}" for name in snake} == {f for f in Settings.model_fields if f.startswith("rollout_")}
    assert set(RULE) == set(schema["rule"]["properties"])

    tuned = Render({"rollout": {"mode": "canary", "canaryShare": 0.05, "schedule": "*/2 * * * *", "rule": RULE}},
                   "sprout", tmp_path / "tuned")
    settings = settings_of(tuned)
    assert (settings.rollout, settings.canary_share) == ("canary", 0.05)
    for name, value in RULE.items():
        field = "rollout_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        assert getattr(settings, field) == value, field
    assert tuned.get("ConfigMap", "sprout-airflow-env")["data"]["SPROUT_ROLLOUT_SCHEDULE"] == "*/2 * * * *"
    overridden = {"SPROUT_ENV": "production", "SPROUT_SHADOW_SHARE": "0.5"}
    direct = Render({"rollout": {"mode": "direct"}, "settings": overridden}, "sprout", tmp_path / "direct")
    assert settings_of(direct).rollout == "direct" and settings_of(direct).shadow_share == 0.5  # settings.* wins
    for bad in ({"mode": "blue-green"}, {"shadowShare": 1.5}, {"rule": {"minReviwed": 3}},
                {"rule": {"timeoutFallback": "wait"}}):
        with pytest.raises(require_helm().HelmValuesError):
            Render({"rollout": bad}, "x", tmp_path / "bad")
