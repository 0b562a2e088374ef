"""Start `promptcls serve`: load the model (and the shadow), then run uvicorn until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from promptcls.config import UsageError
from promptcls.serving import bodies
from promptcls.serving.metrics import ServingMetrics
from promptcls.serving.models import ModelHolder, load
from promptcls.serving.settings import serving_defaults
from promptcls.serving.shadow import Shadow

log = logging.getLogger(__name__)
TOKEN_ENV = "PROMPTCLS_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeOptions:
    model_uri: str
    host: str
    port: int
    limits: bodies.Limits
    poll_interval_s: float
    shadow_uri: str | None = None
    token_file: str | None = None
    shadow_queue_size: int = 256
    keep_disagreements: int = 1000
    record_traces: bool = False
    trace_config: str | None = None


def read_token(token_file: str | None) -> str | None:
    """The bearer token: the first line of `token_file`, else $PROMPTCLS_SERVE_TOKEN, else none (no auth)."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {token_file}: {exc.strerror}") from None
        if not token:
            raise UsageError(f"--token-file {token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def _load(uri: str, role: str):
    try:
        return load(uri)
    except Exception as exc:  # a bad URI or an unreachable registry: say which and stop
        raise UsageError(f"cannot load the {role} model {uri}: {type(exc).__name__}: {exc}") from None


def build_app(options: ServeOptions):
    from promptcls.serving.app import create_app

    token = read_token(options.token_file)
    metrics = ServingMetrics()

    def counted(role):
        def on_swap(result, served):
            metrics.swaps.labels(role, result).inc()
            if served is not None:
                metrics.set_model(role, served)
        return on_swap

    holder = ModelHolder(_load(options.model_uri, "served"), options.poll_interval_s, counted("champion"))
    recorder = None
    if options.record_traces:
        from promptcls.feedback.traces import DecisionRecorder

        recorder = DecisionRecorder(options.trace_config, source="server")
        metrics.watch_recorder(recorder)
    shadow = None
    if options.shadow_uri:
        shadow_holder = ModelHolder(_load(options.shadow_uri, "shadow"), options.poll_interval_s, counted("shadow"),
                                    role="shadow")
        shadow = Shadow(shadow_holder, metrics, options.shadow_queue_size, options.keep_disagreements, recorder)
    log.info("serving %s (version %s)%s%s", options.model_uri, holder.current.version or "-",
             f", shadow {options.shadow_uri} (version {shadow.holder.current.version or '-'})" if shadow else "",
             ", bearer-token auth on" if token else "")
    return create_app(holder, options.limits, metrics, token, shadow, recorder)


def serve(options: ServeOptions) -> None:
    import uvicorn

    app = build_app(options)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10)


def defaults() -> dict:
    return serving_defaults()
