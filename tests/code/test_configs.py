"""Every registered family and every model configuration builds (in the manner of lightning-hydra's
test_configs.py): the YAML validates against the family's schema, each model's estimator / network is instantiated
untrained and tiny, and a misspelt key anywhere is refused naming the file and key. No training, no data."""

import dataclasses
from importlib.resources import files

import pytest
import yaml

from promptcls import LABELS
from promptcls.config import UsageError, family_config
from promptcls.families import FAMILIES, config_schema, get_family
from promptcls.pipeline import MAIN_JOB, MainArgs
from promptcls.schemas import validate

def raw(family: str) -> dict:
    return yaml.safe_load(files("promptcls.conf").joinpath(f"{family}.yaml").read_text())


MODELS = [(family, model) for family in FAMILIES for model in get_family(family).model_names()]


@pytest.mark.parametrize("family, model", MODELS, ids=[f"{f}-{m}" for f, m in MODELS])
def test_every_model_configuration_builds(family, model):
    built = get_family(family).build_untrained(model)
    if family == "traditional":
        assert built.named_steps["features"].transformer_list and hasattr(built.named_steps["clf"], "fit")
    elif family == "deep_learning":
        assert built.output_shape == (None, len(LABELS))
    elif hasattr(built, "config"):  # a packaged transformers checkpoint
        assert built.config.num_labels == len(LABELS)
    else:  # a hub model (not fetched offline): its validated entry
        assert "/" in built["hub"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_is_registered_completely(family):
    impl = get_family(family)
    assert impl.name == family and impl.model_names()
    assert config_schema(family) is not None and family_config(family)
    args = impl.args_class(**MAIN_JOB[family](MainArgs()), sample=60)  # the main job's arguments are valid
    assert dataclasses.is_dataclass(args) and args.experiment


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_misspelt_family_key_is_refused_naming_file_and_key(family):
    data = raw(family)
    data["search_spaces"] = data.pop("search_space", {})  # a plausible typo of a top-level key
    with pytest.raises(UsageError, match=rf"conf/{family}.yaml: search_spaces: unknown key"):
        validate(data, config_schema(family), f"promptcls/conf/{family}.yaml")
    model = next(iter(data["models"]))
    data = raw(family)
    if family != "deep_learning":  # deep-learning model entries are builder kwargs: test_builder_kwargs_checked
        data["models"][model]["paramz"] = {}
        with pytest.raises(UsageError, match=rf"models\.{model}\.paramz: unknown key"):
            validate(data, config_schema(family), f"promptcls/conf/{family}.yaml")


def test_builder_kwargs_checked():
    family = get_family("deep_learning")
    config = family_config("deep_learning")
    model = next(iter(config["models"]))
    saved = dict(config["models"][model])
    config["models"][model]["unitz"] = 3
    try:
        with pytest.raises(TypeError, match="unitz"):
            family.build_untrained(model)
    finally:
        config["models"][model] = saved


def test_search_space_distribution_is_checked():
    data = raw("traditional")
    data["search_space"]["logreg"]["C"] = {"type": "float", "low": 1.0}  # no high
    with pytest.raises(UsageError, match=r"search_space\.logreg\.C"):
        validate(data, config_schema("traditional"), "promptcls/conf/traditional.yaml")


def _behaviour_cases():
    from promptcls.behaviour import DEFAULT_CASES
    return yaml.safe_load(DEFAULT_CASES.read_text())


def _settings(name):
    from promptcls.feedback.settings import load_settings
    return lambda: load_settings(name)


def _reader(module: str, name: str):
    return lambda: getattr(__import__(module, fromlist=[name]), name)()


CONF_READERS = {  # every file of promptcls/conf and the one reader the library uses for it
    **{family: (lambda f=family: family_config(f)) for family in FAMILIES},
    "sources": _reader("promptcls.ood.sources", "sources_config"),
    "robustness": _reader("promptcls.text.settings", "robustness"),
    "serving": _reader("promptcls.serving.settings", "serving_defaults"),
    "feedback": _settings("feedback"),
    "monitor": _settings("monitor"),
    "behaviour": _behaviour_cases,
}


def test_every_conf_file_has_a_reader():
    shipped = {p.name.removesuffix(".yaml") for p in files("promptcls.conf").iterdir() if p.name.endswith(".yaml")}
    assert shipped == set(CONF_READERS)


@pytest.mark.parametrize("name", sorted(CONF_READERS))
def test_every_conf_file_loads_through_its_reader(name):
    """A config read through the wrong reader (sources.yaml through family_config) failed every training run."""
    assert CONF_READERS[name]()
