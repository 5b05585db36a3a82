"""Runs inside the Airflow virtualenv (``.venv-airflow/bin/python``), driven by the DAG tests.

    airflow_driver.py structure [PARAMS_JSON] OUT.json
        parse the DAGs folder with a DagBag; write import errors and, per DAG, its schedule, flags and
        tasks (type, downstream ids, trigger rule, retries; pod image, resources, node selector, env and
        envFrom as sent to Kubernetes; the CLI arguments each task renders with RENDER_CONTEXT, whose params
        PARAMS_JSON overrides, a mapped task's per map index).
    airflow_driver.py validate DAG_ID CONFS_JSON OUT.json
        check each of a list of run confs against the DAG's params as a trigger does; write their errors
        (null for a valid one).
    airflow_driver.py run DAG_ID LOGICAL_DATE CONF_JSON OUT.json
        ``dag.test()`` one run (the same logical date again re-runs the same run, cleared); write the
        run's state and every task instance's final state and XCom return value (a mapped task's instances
        under ``mapped``, by map index).
    airflow_driver.py authorize SPEC_JSON OUT.json
        the decisions of Sprout's auth manager (airflow_plugins/, imported from the plugins folder) on the
        spec's cases, and what its middleware records of the spec's requests (see ``authorize``).

The result goes to OUT.json because Airflow logs to stdout and stderr. The environment (AIRFLOW_HOME,
AIRFLOW__CORE__DAGS_FOLDER, SPROUT_*) comes from the test.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def _dagbag() -> Any:
    """The DAGs folder parsed as the DAG processor does (its folder on sys.path, for sibling modules)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    return BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class _StubTaskInstance:
    """Enough of a task instance to render templates that pull an upstream task's XCom."""

    def xcom_pull(self, task_ids: str | list[str], **_: Any) -> Any:
        if isinstance(task_ids, str):
            return STUB_XCOMS.get(task_ids, {})
        pulled: list[Any] = []  # a list of task ids pulls a list: every map index's value of each
        for task_id in task_ids:
            value = STUB_XCOMS.get(task_id, {})
            pulled.extend(value) if isinstance(value, list) else pulled.append(value)
        return pulled


STUB_XCOMS: dict[str, Any] = {
    "train_candidate": {"run_id": 7},
    "assess_candidate": [{"backbone": "efficientnet_lite0", "log_loss": 0.2},
                         {"backbone": "efficientnet_lite1", "log_loss": 0.1}],
    "select_candidate": {"backbone": "efficientnet_lite1", "tried": [
        {"backbone": "efficientnet_lite0", "log_loss": 0.2}, {"backbone": "efficientnet_lite1", "log_loss": 0.1}]},
    "plan_shards": {"model_version": 4, "n": 10, "shards": [{"shard": "0/2", "n": 6}, {"shard": "1/2", "n": 4}]},
}


# A context to render arguments with, without a DAG run: run id, the DAGs' params, a stub ti.
RENDER_CONTEXT = {"run_id": "manual__2026-01-01T00:00:00+00:00", "ti": _StubTaskInstance(),
                  "params": {"force": True, "source": "s3://data/first set", "output": "s3://scored/run 1/",
                             "shards": 3, "format": "csv", "low_confidence": 0.5}}


def _xcom_value(arg: Any) -> Any:
    """What an upstream task returns in RENDER_CONTEXT: a CLI task's stub answer (STUB_XCOMS), else its Python
    callable's, called on its own upstream values."""
    from airflow.sdk.definitions.xcom_arg import XComArg
    from airflow.sdk.execution_time.context import set_current_context

    op = arg.operator
    if op.task_id in STUB_XCOMS:
        return STUB_XCOMS[op.task_id]

    def value(v: Any) -> Any:
        return _xcom_value(v) if isinstance(v, XComArg) else v

    with set_current_context(RENDER_CONTEXT):  # type: ignore[arg-type]
        return op.python_callable(*map(value, op.op_args), **{k: value(v) for k, v in op.op_kwargs.items()})


def _expanded(task: Any) -> list[Any]:
    """A mapped task's one expanded argument (``arguments`` of a pod, ``args`` of the local CLI task), per map
    index, as its upstream task returns it (no template rendering: Airflow renders no XCom value)."""
    [arg] = getattr(task, "op_kwargs_expand_input", task.expand_input).value.values()
    return _jsonable(_xcom_value(arg))


def _pod_info(fields: dict[str, Any]) -> dict[str, Any]:
    """A pod's summary from its operator's (or a mapped operator's partial) keyword arguments."""
    from airflow.providers.cncf.kubernetes.backcompat.backwards_compat_converters import convert_env_vars
    from kubernetes.client import ApiClient

    resources = fields.get("container_resources")
    k8s_json = ApiClient().sanitize_for_serialization  # camelCase, unset fields left out
    return _jsonable({
        "image": fields.get("image"), "namespace": fields.get("namespace"), "cmds": fields.get("cmds"),
        "arguments": fields.get("arguments"),
        "limits": resources.limits if resources else None,
        "requests": resources.requests if resources else None,
        "node_selector": fields.get("node_selector"),
        "tolerations": [t if isinstance(t, dict) else t.to_dict() for t in fields.get("tolerations") or []],
        "do_xcom_push": fields.get("do_xcom_push"),
        "env": k8s_json(convert_env_vars(fields.get("env_vars") or [])),  # a dict stays one until rendered
        "env_from": k8s_json(list(fields.get("env_from") or [])),
    })


def _task_info(task: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": type(task).__name__,
        "downstream": sorted(task.downstream_task_ids),
        "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
        "retries": task.retries,
        "retry_exponential_backoff": task.retry_exponential_backoff,
        "max_retry_delay": str(task.max_retry_delay) if task.max_retry_delay else None,
        "execution_timeout": str(task.execution_timeout) if task.execution_timeout else None,
    }
    if type(task).__name__.endswith("MappedOperator"):  # MappedOperator, DecoratedMappedOperator
        info["mapped"] = task.task_type  # the operator each mapped task instance runs
        info["expand"] = sorted(getattr(task, "op_kwargs_expand_input", task.expand_input).value)
        if task.task_type == "KubernetesPodOperator":
            info["pod"] = _pod_info(task.partial_kwargs)
        info["rendered"] = _expanded(task)
        return info
    if type(task).__name__ == "KubernetesPodOperator":
        fields = {name: getattr(task, name) for name in ("image", "namespace", "cmds", "arguments",
                                                        "container_resources", "node_selector", "tolerations",
                                                        "do_xcom_push", "env_vars", "env_from")}
        info["pod"] = _pod_info(fields)
        info["pod"]["cmds"] = task.render_template(task.cmds, RENDER_CONTEXT, task.dag.get_template_env())
        rendered = task.render_template(task.arguments, RENDER_CONTEXT, task.dag.get_template_env())
    else:
        info["op_args"] = _jsonable(getattr(task, "op_args", None))
        rendered = task.render_template(task.op_args, RENDER_CONTEXT, task.dag.get_template_env())
    info["rendered"] = _jsonable(rendered)
    return info


def structure(params: dict[str, Any]) -> dict[str, Any]:
    RENDER_CONTEXT["params"] = {**RENDER_CONTEXT["params"], **params}
    bag = _dagbag()
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "fileloc": dag.fileloc,
            "schedule": dag.schedule if isinstance(dag.schedule, str | type(None)) else repr(dag.schedule),
            "timetable": type(dag.timetable).__name__,
            "cron": getattr(getattr(dag.timetable, "timetable", dag.timetable), "expression", None),
            "assets": sorted(a.name for a in getattr(getattr(dag.timetable, "asset_condition", None), "objects", [])),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tags": sorted(dag.tags),
            "params": sorted(dag.params.keys()),
            "tasks": {t.task_id: _task_info(t) for t in dag.tasks},
        }
    return {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
            "files": sorted(Path(f).name for f in bag.file_last_changed), "dags": dags}


def run(dag_id: str, logical_date: str, conf: dict[str, Any]) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    bag = _dagbag()
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    when = datetime.fromisoformat(logical_date)
    # run_after fixes the run id (manual__<run_after>): the same date again re-runs that run, cleared.
    dr = dag.test(logical_date=when, run_after=when, run_conf=conf or None)
    tasks: dict[str, Any] = {}
    with create_session() as session:
        for ti in sorted(dr.get_task_instances(session=session), key=lambda t: (t.task_id, t.map_index)):
            row = session.scalars(XComModel.get_many(run_id=dr.run_id, dag_ids=dag_id, task_ids=ti.task_id,
                                                     map_indexes=ti.map_index, key="return_value")).first()
            info = {"state": str(ti.state) if ti.state else None, "try_number": ti.try_number,
                    "xcom": _jsonable(XComModel.deserialize_value(row)) if row else None}
            if ti.map_index >= 0:  # a mapped task: the last instance's info, and each instance's in "mapped"
                info["mapped"] = [*tasks.get(ti.task_id, {}).get("mapped", []), dict(info)]
            tasks[ti.task_id] = info
    return {"run_id": dr.run_id, "state": str(dr.state),
            "tasks": tasks}


def validate(dag_id: str, confs: list[dict[str, Any]]) -> dict[str, Any]:
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    # The params as the API server and the scheduler hold them: the serialized DAG's.
    params = DagSerialization.from_dict(DagSerialization.to_dict(_dagbag().dags[dag_id])).params
    errors: list[str | None] = []
    for conf in confs:
        try:
            params.deep_merge(conf).validate()  # what creating a DAG run does (a trigger, dag.test())
        except ParamValidationError as exc:
            errors.append(str(exc))
        else:
            errors.append(None)
    return {"errors": errors}


def _decide(manager: Any, case: dict[str, Any]) -> bool:
    from airflow.api_fastapi.auth.managers.models import resource_details as rd
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=case["user"], role=case["role"])
    kind, method, resource = case["ask"], case["method"], case.get("id")
    if kind == "dag":
        entity = rd.DagAccessEntity[case["entity"]] if case.get("entity") else None
        return manager.is_authorized_dag(method=method, user=user, access_entity=entity,
                                         details=rd.DagDetails(id=resource))
    details = {"asset": rd.AssetDetails(id=resource), "connection": rd.ConnectionDetails(conn_id=resource),
               "variable": rd.VariableDetails(key=resource), "pool": rd.PoolDetails(name=resource)}[kind]
    return getattr(manager, f"is_authorized_{kind}")(method=method, user=user, details=details)


async def _through_middleware(request: dict[str, Any]) -> dict[str, Any]:
    """One HTTP request (method, path, body chunks) through the auth manager's middleware to an app that
    records what the auth manager would see and the body it receives; ``status``: the middleware's own answer, if
    it gave one, and ``read``: how many of the request's messages were read in all."""
    import sprout_auth_manager as sam

    seen: dict[str, Any] = {}

    async def app(_scope: Any, receive: Any, _send: Any) -> None:
        seen["call"] = sam.current_call().__dict__
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        seen["body"] = body.decode()

    chunks = [c.encode() for c in request["chunks"]] or [b""]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    total = len(messages)

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]

    scope = {"type": "http", "method": request["method"], "path": request["path"], "headers": []}
    await sam.ApiCallMiddleware(app)(scope, receive, send)
    seen["read"] = total - len(messages)
    seen["after"] = sam.current_call()  # reset once the request is served
    return seen


def authorize(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec``: ``cases`` (user, role, the call being served [method, path, event's asset id], the question:
    ask dag|asset|connection|variable|pool, method, entity, id), ``consumers`` (asset id -> the DAG ids
    scheduled on it, standing in for the metadata database) and ``requests`` for the middleware."""
    import asyncio

    import airflow  # noqa: F401 - puts the plugins folder on sys.path
    import sprout_auth_manager as sam

    consumers = spec["consumers"]
    sam.asset_consumers = lambda asset_id: set(consumers.get(str(asset_id), []))
    manager = sam.SproutAuthManager()
    decisions = []
    for case in spec["cases"]:
        with sam.serving(sam.ApiCall(*case["call"]) if case.get("call") else None):
            decisions.append(_decide(manager, case))
    middlewares = [m.__name__ for m, _ in manager.get_fastapi_middlewares()]
    return {"decisions": decisions, "middlewares": middlewares,
            "requests": [asyncio.run(_through_middleware(r)) for r in spec["requests"]]}


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "structure":
        *params, out = args
        result = structure(json.loads(params[0]) if params else {})
    elif command == "validate":
        dag_id, confs, out = args
        result = validate(dag_id, json.loads(confs))
    elif command == "authorize":
        spec, out = args
        result = authorize(json.loads(spec))
    elif command == "run":
        dag_id, logical_date, conf, out = args
        result = run(dag_id, logical_date, json.loads(conf))
    else:
        raise SystemExit(f"unknown command {command!r}")
    Path(out).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
