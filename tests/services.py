"""Throw-away backing services for the team-server tests: a real PostgreSQL cluster (Debian's binaries, initdb +
pg_ctl in a temp folder, loopback port) and a real S3-compatible endpoint (moto's server). Both are stopped by the
fixtures that start them."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from promptcls.server import free_port, wait_until


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or list(filter(None, [shutil.which(name)]))
    if not found:
        raise RuntimeError(f"PostgreSQL's `{name}` not found: install Debian's `postgresql` (make system-deps)")
    return found[-1]


def _as_db_owner(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` system user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], timeout: int = 120) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


@contextmanager
def postgres_cluster():
    """A PostgreSQL cluster on 127.0.0.1:<free port> with trust auth, in its own temp folder (outside pytest's
    root-only tmp tree, which the `postgres` user cannot enter); yields a `postgresql://postgres@127.0.0.1:PORT/`
    prefix to which a database name is appended (see `create_database`)."""
    folder = Path(tempfile.mkdtemp(prefix="promptcls-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    pg_ctl = [_pg_bin("pg_ctl"), "-D", str(data)]
    try:
        _run(_as_db_owner([_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]))
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder}"
        _run(_as_db_owner([*pg_ctl, "-l", str(folder / "log"), "-o", options, "-w", "start"]))
        yield f"postgresql://postgres@127.0.0.1:{port}/"
    finally:
        subprocess.run(_as_db_owner([*pg_ctl, "-m", "fast", "-w", "stop"]), capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(prefix: str, name: str) -> str:
    """A new database in the cluster at `prefix`; returns its URL."""
    import psycopg

    with psycopg.connect(prefix + "postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return prefix + name


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "promptcls-test", "AWS_SECRET_ACCESS_KEY": "promptcls-test-secret",
                  "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def s3_endpoint(log: Path):
    """moto's S3-compatible server on 127.0.0.1:<free port>; yields its endpoint URL."""
    port = free_port()
    with log.open("ab") as logfile:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), proc, timeout=60, what=f"moto S3 server on port {port}", log=log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
            return True
    except OSError:
        return False
