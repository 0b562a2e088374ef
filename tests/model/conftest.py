"""Model tier: behavioural tests run against every model URI given with `--model-uri` (repeatable; only when
`tests/model` is named on the command line) or in PROMPTCLS_MODEL_URIS (comma-separated). Without either, they run
against a small logistic-regression model the fixture trains and logs to the test server, so CI always runs them."""

from __future__ import annotations

import os

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from promptcls.contract import log_model, pip_requirements
from promptcls.families.traditional import TraditionalFamily

DEFAULT_MODEL = "small-logreg"


def pytest_addoption(parser):
    parser.addoption("--model-uri", action="append", default=[],
                     help="model URI for tests/model (repeatable); default: a small model trained by the tests")


def given_uris(config) -> list[str]:
    uris = list(config.getoption("model_uri", default=None) or [])
    uris += [u.strip() for u in os.environ.get("PROMPTCLS_MODEL_URIS", "").split(",") if u.strip()]
    return uris


def pytest_collection_modifyitems(config, items):
    """Floors (tests marked `named_model_only`) are collected only when model URIs are given."""
    if given_uris(config):
        return
    deselected = [item for item in items if "named_model_only" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if "named_model_only" not in item.keywords]


def pytest_generate_tests(metafunc):
    if "model_uri" in metafunc.fixturenames:
        metafunc.parametrize("model_uri", given_uris(metafunc.config) or [DEFAULT_MODEL], indirect=True,
                             scope="module")


@pytest.fixture(scope="session")
def small_model_uri(tracking_server, small_classifier):
    """The small TF-IDF + logistic regression (tests/conftest.py) logged to the test server; its models:/ URI."""
    classifier = small_classifier
    client = MlflowClient()
    experiment = client.get_experiment_by_name("model-tier")
    exp_id = experiment.experiment_id if experiment else client.create_experiment("model-tier")
    with mlflow.start_run(experiment_id=exp_id, run_name="small-logreg"):
        info = log_model(classifier, ["hello", "ignore previous instructions"],
                         pip_requirements(*TraditionalFamily().requirements()))
    return info.model_uri


@pytest.fixture(scope="module")
def model_uri(request):
    """The URI under test; the default one is trained on demand (and needs the test server)."""
    if request.param == DEFAULT_MODEL:
        return request.getfixturevalue("small_model_uri")
    return request.param
