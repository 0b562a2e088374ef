"""The FastAPI app of `promptcls serve`: POST /invocations (the MLflow scoring server's JSON in and out), /health
(and /ping), /ready, /version, /metrics, /shadow/disagreements. Every refusal is a JSON `{"error_code", "message"}`
with a 4xx/5xx status, never a default verdict."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mlflow.exceptions import MlflowException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

import promptcls
from promptcls.serving import bodies
from promptcls.serving.metrics import ServingMetrics
from promptcls.serving.models import ModelHolder
from promptcls.serving.shadow import Shadow

log = logging.getLogger(__name__)
OPEN_ROUTES = ("/health", "/ping", "/ready")  # probes answer without a token
ROUTES = (*OPEN_ROUTES, "/invocations", "/version", "/metrics", "/shadow/disagreements")
CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
         413: "REQUEST_LIMIT_EXCEEDED", 415: "UNSUPPORTED_MEDIA_TYPE", 500: "INTERNAL_ERROR",
         503: "NOT_READY", 504: "TIMEOUT"}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error_code": CODES.get(status, "ERROR"), "message": message}, status_code=status)


class Observe:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): bearer-token check, request count and latency."""

    def __init__(self, app, metrics: ServingMetrics, token: str | None):
        self.app, self.metrics = app, metrics
        self.token = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, path = time.perf_counter(), scope["path"]
        route = path if path in ROUTES else "other"
        status = [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        if self.token and path not in OPEN_ROUTES and not self._authorised(scope):
            await error(401, "missing or wrong bearer token (Authorization: Bearer <token>)")(scope, receive, sending)
        else:
            await self.app(scope, receive, sending)
        code = str(status[0])
        self.metrics.requests.labels(route, code).inc()
        self.metrics.latency.labels(route, code).observe(time.perf_counter() - start)

    def _authorised(self, scope) -> bool:
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        return hmac.compare_digest(given, self.token)  # constant time in the token's content


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise bodies.BadRequest(f"request body of {declared} bytes is over the limit of {limit}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise bodies.BadRequest(f"request body is over the limit of {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(holder: ModelHolder, limits: bodies.Limits, metrics: ServingMetrics, token: str | None = None,
               shadow: Shadow | None = None, recorder=None) -> FastAPI:
    """`recorder`: a `promptcls.feedback.traces.DecisionRecorder` that records decisions as MLflow traces off the
    request path (with a shadow, after the shadow has scored them); None records nothing."""
    @asynccontextmanager
    async def lifespan(_app):
        holder.start()
        if shadow:
            shadow.start()
        yield
        holder.stop()
        if shadow:
            shadow.stop()
        if recorder is not None:
            recorder.close(timeout=10)

    app = FastAPI(title="promptcls", version=promptcls.__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.add_middleware(Observe, metrics=metrics, token=token)
    metrics.set_model("champion", holder.current)
    if shadow:
        metrics.set_model("shadow", shadow.holder.current)

    @app.exception_handler(bodies.BadRequest)
    async def refused(_request, exc: bodies.BadRequest):
        return error(exc.status, str(exc))

    @app.exception_handler(Exception)
    async def crashed(_request, exc: Exception):  # anything unforeseen: a JSON error, never a verdict
        log.exception("unhandled error")
        return error(500, f"internal error ({type(exc).__name__}); no verdict")

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.get("/health")
    @app.get("/ping")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        return {"ready": True, "version": holder.current.version, "last_swap_error": holder.last_error}

    @app.get("/version")
    async def version():
        answer = {**holder.current.describe(), "promptcls_version": promptcls.__version__,
                  "last_swap_error": holder.last_error}
        answer["shadow"] = shadow.holder.current.describe() if shadow else None
        return answer

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/shadow/disagreements")
    async def disagreements():
        if not shadow:
            return error(404, "no shadow model: start the server with --shadow MODEL_URI")
        return {"kept": shadow.disagreements.maxlen, "disagreements": list(shadow.disagreements)}

    @app.post("/invocations")
    async def invocations(request: Request):
        texts = bodies.parse(await read_body(request, limits.max_body_bytes),
                             request.headers.get("content-type", ""), limits)
        served = holder.current  # this request finishes on this model, whatever a swap does meanwhile
        start = time.perf_counter()
        try:
            frame = await asyncio.wait_for(anyio.to_thread.run_sync(served.predict, texts, abandon_on_cancel=True),
                                           limits.timeout_s)
        except TimeoutError:
            return error(504, f"the model took longer than {limits.timeout_s} s; no verdict")
        except Exception as exc:  # fail closed: an error, never a default verdict
            if isinstance(exc, MlflowException) and exc.error_code == "INVALID_PARAMETER_VALUE":
                return error(400, exc.message)  # the contract refused the input
            log.exception("model %s v%s failed", served.uri, served.version)
            return error(500, f"model failed ({type(exc).__name__}): {exc}; no verdict")
        if len(frame) != len(texts) or "label_name" not in frame:
            return error(500, f"model returned {len(frame)} rows for {len(texts)} prompts; no verdict")
        latency_ms = (time.perf_counter() - start) * 1000
        metrics.observe_predictions(frame)
        if shadow:
            shadow.submit(texts, frame, served.version, latency_ms)
        elif recorder is not None:
            recorder.submit(texts, frame, model_version=served.version, latency_ms=latency_ms)
        return JSONResponse({"predictions": frame.to_dict(orient="records")})

    return app
