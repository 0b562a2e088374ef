"""The tracking server: a real `mlflow server` started in the background and stopped by its PID. The embedded
default is SQLite plus a local artifact folder on 127.0.0.1; a team server takes a PostgreSQL backend, S3-compatible
artifacts and basic auth. Used by `promptcls server` and by the tests."""

from __future__ import annotations

import configparser
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from promptcls.config import DEFAULT_EXPERIMENT

# Seconds a worker remembers a verified basic-auth credential (MLflow's `auth_cache_ttl_seconds`; 0 = off). MLflow
# checks the password hash on every request, about 300 ms of server CPU each on this machine kind, so a training run
# against an auth server spent most of its time there. A password changed or a user deleted through the API takes
# effect at once on the worker that handled it, on the other workers within this TTL.
AUTH_CACHE_TTL_SECONDS = 60


@dataclass(frozen=True)
class LocalServer:
    root: Path
    port: int
    pid: int
    host: str = "127.0.0.1"

    @property
    def uri(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # listening everywhere: use loopback
        return f"http://{host}:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on `host:port` (then a new server cannot bind it, and /health would be
    answered by the other one)."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0


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
        pid, port, *host = _pidfile(root).read_text().split()
        server = LocalServer(root, int(port), int(pid), *host)
        os.kill(server.pid, 0)
    except (OSError, ValueError, TypeError):
        return None
    return server if healthy(server.uri) else None


def start(root: str | Path, port: int | None = None, timeout: float = 90.0, *, host: str = "127.0.0.1",
          backend_store_uri: str | None = None, artifacts_destination: str | None = None,
          auth_database_uri: str | None = None, auth: bool = False, workers: int = 1,
          auth_cache_ttl: int = AUTH_CACHE_TTL_SECONDS, env: dict[str, str] | None = None) -> LocalServer:
    """Start (or reuse) the server recorded under `root`; waits for /health.

    By default its database (`mlflow.db`, SQLite) and artifacts live under `root`. A team server passes a
    PostgreSQL `backend_store_uri` and an `s3://` `artifacts_destination` (the server proxies artifacts, so only
    it needs the S3 credentials and MLFLOW_S3_ENDPOINT_URL). `auth=True` runs MLflow's basic-auth app, its user
    database at `auth_database_uri` (default SQLite under `root`), verified credentials remembered for
    `auth_cache_ttl` seconds per worker (0 = verify every request); the first start needs
    MLFLOW_AUTH_ADMIN_PASSWORD (12+ characters) in the environment.
    """
    if auth_cache_ttl < 0:
        raise ValueError(f"auth_cache_ttl must be 0 (off) or a number of seconds, got {auth_cache_ttl}")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if existing := running(root):
        return existing
    port = port or free_port()
    if port_in_use(host, port):  # else the health check below would pass on whatever server holds the port
        raise RuntimeError(f"port {port} on {host} is already in use (another MLflow server, not recorded under "
                           f"{root}?); stop it or pick another --port")
    env = {**os.environ, **(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--backend-store-uri", backend_store_uri or f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", artifacts_destination or str(root / "artifacts"),
           "--host", host, "--port", str(port), "--workers", str(workers)]
    if auth:
        cmd += ["--app-name", "basic-auth"]
        env.update(auth_settings(root, auth_database_uri or f"sqlite:///{root / 'basic_auth.db'}", env,
                                 auth_cache_ttl))
    with (root / "server.log").open("ab") as logfile:
        proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    server = LocalServer(root, port, proc.pid, host)
    _pidfile(root).write_text(f"{proc.pid} {port} {host}\n")
    try:
        wait_until(lambda: healthy(server.uri), proc, timeout, f"mlflow server on port {port}", root / "server.log")
    except RuntimeError:
        stop(root)
        raise
    return server


def wait_until(ready, proc: subprocess.Popen, timeout: float, what: str, log: Path) -> None:
    """Poll `ready()` until true; a process that exits or a timeout raises with the tail of its log."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not become ready; log tail ({log}):\n{tail}")
        time.sleep(0.5)


def auth_settings(root: Path, database_uri: str, env: dict[str, str],
                  cache_ttl: int = AUTH_CACHE_TTL_SECONDS) -> dict[str, str]:
    """Environment for MLflow's basic-auth app: a copy of its shipped basic_auth.ini with the user database at
    `database_uri` (the shipped file points at a relative sqlite path) and the credential cache at `cache_ttl`
    seconds, and a Flask secret key that survives restarts (taken from MLFLOW_FLASK_SERVER_SECRET_KEY, else
    generated once into `root`)."""
    with warnings.catch_warnings():  # importing it imports MLflow's FastAPI app, which warns about starlette
        warnings.simplefilter("ignore")
        from mlflow.server import auth as mlflow_auth

    config = configparser.ConfigParser()
    config.read(Path(mlflow_auth.__file__).with_name("basic_auth.ini"))
    config["mlflow"]["database_uri"] = database_uri
    config["mlflow"]["auth_cache_ttl_seconds"] = str(cache_ttl)
    ini = root / "basic_auth.ini"
    with ini.open("w") as handle:
        config.write(handle)
    secret = env.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
    if not secret:
        key_file = root / "flask_secret_key"
        if not key_file.exists():
            key_file.touch(mode=0o600)
            key_file.write_text(secrets.token_hex(32))
        secret = key_file.read_text().strip()
    return {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": secret}


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
