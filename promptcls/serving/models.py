"""The served model and its hot swap. `load(uri)` resolves a registry alias to one version and loads exactly that
version; a `ModelHolder` keeps the current `Served` model and, when its URI is `models:/NAME@ALIAS`, a background
thread re-resolves the alias every `poll_interval_s` and swaps in a newly aliased version once it has loaded.

A request takes `holder.current` once and scores on that object, so requests in flight when a swap happens finish
on the old model. A failed load keeps the old model; it is logged and counted (`promptcls_model_swaps_total`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from promptcls.names import CODE_VERSION_TAG, DATA_DIGEST_TAG

log = logging.getLogger(__name__)
ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+)$")


@dataclass(frozen=True)
class Served:
    uri: str
    predict: Callable[[list[str]], pd.DataFrame]
    name: str = ""
    version: str = ""
    alias: str = ""
    run_id: str = ""
    data_digest: str = ""
    code_version: str = ""
    loaded_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, object]:
        return {"model_uri": self.uri, "registered_name": self.name, "version": self.version, "alias": self.alias,
                "run_id": self.run_id, "data_digest": self.data_digest, "code_version": self.code_version,
                "loaded_at": self.loaded_at}


def predict_fn(loaded) -> Callable[[list[str]], pd.DataFrame]:
    """The contract's `predict_texts` of a promptcls model (no DataFrame round trip on the way in); a foreign
    pyfunc gets a DataFrame with a `text` column."""
    try:
        python_model = loaded.unwrap_python_model()
    except Exception:  # not a python_model flavour (e.g. a bare sklearn pyfunc)
        python_model = None
    if callable(getattr(python_model, "predict_texts", None)):
        return python_model.predict_texts
    return lambda texts: loaded.predict(pd.DataFrame({"text": texts}))


def resolve(client: MlflowClient, uri: str) -> tuple[str, str, str] | None:
    """(name, alias, version) the alias URI points at now; None for a URI that is not `models:/NAME@ALIAS`."""
    match = ALIAS_URI.match(uri)
    if not match:
        return None
    version = client.get_model_version_by_alias(match["name"], match["alias"])
    return match["name"], match["alias"], str(version.version)


def load(uri: str, client: MlflowClient | None = None, pinned: tuple[str, str, str] | None = None) -> Served:
    """Load `uri`; an alias URI loads the version it resolves to (or `pinned`), with its run's provenance."""
    client = client or MlflowClient()
    target = pinned or resolve(client, uri)
    if target is None and (match := VERSION_URI.match(uri)):
        target = match["name"], "", match["version"]
    if target is None:
        return Served(uri, predict_fn(mlflow.pyfunc.load_model(uri)))
    name, alias, version = target
    model_version = client.get_model_version(name, version)
    tags = client.get_run(model_version.run_id).data.tags if model_version.run_id else {}
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return Served(uri, predict_fn(loaded), name, version, alias, model_version.run_id or "",
                  tags.get(DATA_DIGEST_TAG, ""), tags.get(CODE_VERSION_TAG, ""))


class ModelHolder:
    """The current model of one URI, hot-swapped by a poller thread (`start`/`stop`)."""

    def __init__(self, served: Served, poll_interval_s: float, on_swap: Callable[[str, Served | None], None],
                 role: str = "champion"):
        self.current = served
        self.poll_interval_s, self.on_swap, self.role = poll_interval_s, on_swap, role
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    def start(self) -> None:
        if self.poll_interval_s > 0 and ALIAS_URI.match(self.current.uri):
            self._thread = threading.Thread(target=self._poll, name=f"promptcls-poll-{self.role}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def check_once(self, client: MlflowClient) -> bool:
        """Swap if the alias points at another version now; True when a swap happened."""
        old = self.current
        try:
            target = resolve(client, old.uri)
            if target is None or target[2] == old.version:
                return False
            log.info("%s: %s now points at version %s (serving %s); loading it", self.role, old.uri, target[2],
                     old.version)
            new = load(old.uri, client, pinned=target)
        except Exception as exc:  # keep serving the old model, say so
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("%s: hot swap of %s failed, still serving version %s: %s", self.role, old.uri, old.version,
                      self.last_error)
            self.on_swap("failure", None)
            return False
        self.current = new  # one reference assignment: atomic; requests holding `old` finish on it
        self.last_error = ""
        log.info("%s: swapped %s from version %s to %s", self.role, old.uri, old.version, new.version)
        self.on_swap("success", new)
        return True

    def _poll(self) -> None:
        client = MlflowClient()
        while not self._stop.wait(self.poll_interval_s):
            self.check_once(client)
