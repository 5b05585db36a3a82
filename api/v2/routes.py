"""The ``/v2`` routes of the Open Inference Protocol (see ``api.v2``): they move bytes between HTTP and
``api.v2.inference``, and answer errors as the protocol has them."""

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.deps import AppStateDep, SettingsDep, WatcherDep
from api.errors import status_for
from api.metrics import observe_prediction
from api.state import AppState
from api.throttle import count_predictions
from api.v2 import inference, protocol
from model.core.errors import NoChampionError, SproutError
from model.core.settings import Settings
from model.runtime.live_rollout import CHAMPION, CLIENT_HEADER
from model.serving.predictor import Predictor
from model.serving.watcher import ModelWatcher


class ProtocolRoute(APIRoute):
    """Errors as the protocol has them: ``{"error": "<sentence>"}`` (not the rest of the API's ``detail``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except protocol.ProtocolError as exc:
                return JSONResponse(protocol.error_body(str(exc)), status_code=exc.status)
            except SproutError as exc:
                return JSONResponse(protocol.error_body(str(exc)), status_code=status_for(exc))
            except HTTPException as exc:
                return JSONResponse(protocol.error_body(str(exc.detail)), status_code=exc.status_code,
                                    headers=exc.headers)

        return route


log = logging.getLogger(__name__)
router = APIRouter(prefix="/v2", tags=["inference protocol (v2)"], route_class=ProtocolRoute)
INFER_BODY = {"content": {
    "application/json": {"example": {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                                 "data": ["<base64 JPEG>"]}]}},
    "application/octet-stream": {"example": "(JSON header of Inference-Header-Content-Length bytes, then the "
                                            "binary tensors)"}}}


@router.get("")
async def read_server_metadata(request: Request) -> dict[str, Any]:
    """Server metadata: name, version and extensions (``binary_tensor_data``)."""
    return protocol.server_metadata(request.app.version)


@router.get("/health/live")
async def read_server_live() -> dict[str, bool]:
    """The process answers (touches no dependency)."""
    return {"live": True}


@router.get("/health/ready", responses={503: {"description": "No model served yet"}})
async def read_server_ready(watcher: WatcherDep) -> JSONResponse:
    """Ready when the champion is loaded (inference needs nothing else); 503 before the first promotion."""
    ready = watcher.current is not None
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


def _model_ready(name: str, version: str | None, settings: Settings, watcher: ModelWatcher) -> JSONResponse:
    try:
        protocol.served_predictor(name, version, model_name=settings.model_name, watcher=watcher)
    except NoChampionError:
        return JSONResponse({"name": name, "ready": False}, status_code=503)
    return JSONResponse({"name": name, "ready": True})


@router.get("/models/{name}/ready")
async def read_model_ready(name: str, settings: SettingsDep, watcher: WatcherDep) -> JSONResponse:
    """Whether the model (the champion) is ready; 404 for another name, 503 before the first promotion."""
    return _model_ready(name, None, settings, watcher)


@router.get("/models/{name}/versions/{version}/ready")
async def read_model_version_ready(name: str, version: str, settings: SettingsDep,
                                   watcher: WatcherDep) -> JSONResponse:
    """Whether this version is served and ready: only the champion's version is (404 for another)."""
    return _model_ready(name, version, settings, watcher)


@router.get("/models/{name}")
async def read_model_metadata(name: str, settings: SettingsDep, watcher: WatcherDep) -> dict[str, Any]:
    """Inputs, outputs, the version served and, as extensions, ``labels`` (the column order of
    ``probabilities``) and ``preprocess`` (how to make ``pixels``)."""
    predictor = protocol.served_predictor(name, None, model_name=settings.model_name, watcher=watcher)
    return protocol.model_metadata(name, predictor)


@router.get("/models/{name}/versions/{version}")
async def read_model_version_metadata(name: str, version: str, settings: SettingsDep,
                                      watcher: WatcherDep) -> dict[str, Any]:
    """The metadata of this version, if it is the champion's (404 otherwise)."""
    predictor = protocol.served_predictor(name, version, model_name=settings.model_name, watcher=watcher)
    return protocol.model_metadata(name, predictor)


async def _infer(name: str, version: str | None, request: Request, state: AppState) -> Response:
    """Parse, run and encode on a prediction thread; count each prediction as ``/predict`` does. Only encoded
    images enter the drift window and capture: ``pixels`` are whatever the client says (any embedding)."""
    settings = state.services.settings
    champion = protocol.served_predictor(name, version, model_name=settings.model_name, watcher=state.watcher)
    body, headers = await request.body(), request.headers
    # during a canary rollout, a client's whole request goes to one version (a path naming one: that one)
    predictor, answered_by = (champion, CHAMPION) if version is not None else state.rollout.choose(
        champion, lambda: headers.get(CLIENT_HEADER) or hashlib.sha256(body).hexdigest())
    started = time.perf_counter()

    def run(model: Predictor, count: Callable[[int], None]) -> Awaitable[inference.Answer]:
        return state.predictions.run(partial(inference.answer, body, headers.get(protocol.HEADER_LENGTH),
                                             headers.get("content-encoding"), model, model_name=name, count=count))

    counted = partial(count_predictions, state.throttle, request, settings)
    try:
        answer = await run(predictor, counted)
    except SproutError:
        raise  # the request itself is bad: the champion would refuse it too
    except Exception:
        if answered_by == CHAMPION:
            raise
        log.exception("the challenger failed on a canary request; the champion answers")
        predictor, answered_by = champion, CHAMPION
        answer = await run(champion, lambda _images: None)  # counted once, on the first try
    images, results = answer.request.images, answer.inference.results
    for i, result in enumerate(results):
        observe_prediction(result)
        if images is not None:
            state.recorder.record(result)
            state.capture.offer(images[i], result)
    if images is not None:  # shadow scoring or the canary's pair, off the response path
        per_image_ms = (time.perf_counter() - started) * 1000 / max(1, len(images))
        state.rollout.observe_many(images, results, answered_by, per_image_ms, champion)
    if answer.header_length is None:
        return Response(answer.body, media_type="application/json")
    return Response(answer.body, media_type="application/octet-stream",
                    headers={protocol.HEADER_LENGTH: answer.header_length})


INFER_DOC = {"requestBody": INFER_BODY}
INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input"}, 404: {"description": "Unknown model or version"},
    413: {"description": "Too large"}, 429: {"description": "Too many images from this address"},
    503: {"description": "No model yet"}}


@router.post("/models/{name}/infer", openapi_extra=INFER_DOC, responses=INFER_ERRORS)
async def create_inference(name: str, request: Request, state: AppStateDep) -> Response:
    """Classify a batch: input ``images`` (BYTES ``[N]``, encoded; base64 in JSON) or ``pixels`` (FP32
    ``[N,3,H,W]``); outputs ``probabilities`` (FP32 ``[N,C]``) and ``label`` (BYTES ``[N]``), JSON or binary."""
    return await _infer(name, None, request, state)


@router.post("/models/{name}/versions/{version}/infer", openapi_extra=INFER_DOC, responses=INFER_ERRORS)
async def create_version_inference(name: str, version: str, request: Request, state: AppStateDep) -> Response:
    """As ``/v2/models/{name}/infer``, for the champion's version only (404 for another)."""
    return await _infer(name, version, request, state)
