"""The embedded tracking server: a real `mlflow server` on 127.0.0.1 with a SQLite backend and a local artifact
folder, started in the background and stopped by its PID. Used by `promptcls server` and by the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from promptcls.config import DEFAULT_EXPERIMENT


@dataclass(frozen=True)
class LocalServer:
    root: Path
    port: int
    pid: int

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _pidfile(root: Path) -> Path:
    return root / "server.pid"


def running(root: Path) -> LocalServer | None:
    """The server recorded under `root`, if its process is alive and healthy."""
    try:
        pid, port = map(int, _pidfile(root).read_text().split())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    server = LocalServer(root, port, pid)
    return server if healthy(server.uri) else None


def start(root: str | Path, port: int | None = None, timeout: float = 90.0) -> LocalServer:
    """Start (or reuse) the server whose database and artifacts live under `root`; waits for /health."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if existing := running(root):
        return existing
    port = port or free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with (root / "server.log").open("ab") as logfile:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    server = LocalServer(root, port, proc.pid)
    _pidfile(root).write_text(f"{proc.pid} {port}\n")
    deadline = time.monotonic() + timeout
    while not healthy(server.uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(root)
            tail = (root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server did not become healthy on port {port}; log tail:\n{tail}")
        time.sleep(0.5)
    return server


def stop(root: str | Path, timeout: float = 20.0) -> bool:
    """Stop the server recorded under `root` (SIGTERM to its process group, then SIGKILL); True if one ran."""
    pidfile = _pidfile(Path(root).resolve())
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    pidfile.unlink(missing_ok=True)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child (tests), else a zombie lingers
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    return True


def env_exports(server: LocalServer, experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Shell lines that point MLflow clients (and `mlflow run`) at the server and the default experiment."""
    return f"export MLFLOW_TRACKING_URI={server.uri}\nexport MLFLOW_EXPERIMENT_NAME={experiment}\n"
