"""deploy/: the compose file parses with the expected services and wiring, and the Dockerfile's server command line
is one the real `promptcls serve` parser accepts (no container engine here; README "Serving" says what is tested)."""

import json
import re
from pathlib import Path

import yaml

from promptcls import cli

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_compose_services_and_wiring():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "minio", "minio-bucket", "mlflow", "scorer"}
    mlflow = services["mlflow"]
    assert "postgresql://" in " ".join(mlflow["command"]) and "s3://mlflow/artifacts" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert services["scorer"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert services["scorer"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["scorer"]["ports"] == ["127.0.0.1:8100:8100"]            # loopback only
    for service in services.values():
        if "build" in service:
            assert (ROOT / service["build"]["context"].replace("..", ".") / service["build"]["dockerfile"]).is_file()
    text = (DEPLOY / "compose.yaml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${MINIO_ROOT_PASSWORD:?" in text  # no default secrets


def test_dockerfile_command_is_a_valid_serve_command_line(monkeypatch):
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    scorer = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["scorer"]["command"]
    assert entrypoint[:2] == ["promptcls", "serve"]
    seen = []
    monkeypatch.setattr(cli, "_serve", lambda args: seen.append(args) or 0)
    for args in (cmd, scorer):
        assert cli.main(entrypoint[1:] + args) == 0
    assert seen[0].host == "0.0.0.0" and seen[0].port == 8100 and seen[1].poll_interval_s == 10
    assert 'pip install ".[${EXTRAS}]"' in dockerfile and "USER promptcls" in dockerfile
