"""Search spaces (`search_space:` in promptcls/conf/<family>.yaml) become Optuna draws; bad specs fail naming the
field before any study or run exists."""

import optuna
import pytest

from promptcls import tune
from promptcls.config import UsageError, family_config
from promptcls.tune import TuneArgs, search_space, suggest


@pytest.mark.parametrize("family,model", [*((("traditional", m) for m in family_config("traditional")["models"])),
                                          ("deep_learning", "cnn"), ("deep_learning", "transformer"),
                                          ("transformers", "minilm")])
def test_every_shipped_space_is_valid_for_its_family(family, model):
    args = TuneArgs(family=family, model=model)       # validates names and values against the family's args
    trial = optuna.create_study(direction="maximize").ask()
    params = suggest(trial, args.space)
    spaces = family_config(family)["search_space"]
    assert set(params) == set(spaces.get(model, spaces.get("*")))
    args.family_impl.tuned_args(args.train_args, params)   # a drawn configuration is one the family accepts


def test_translation_uses_optuna_distributions():
    space = search_space("traditional", "naive_bayes")
    trial = optuna.create_study(direction="maximize").ask()
    params = suggest(trial, space)
    assert trial.distributions == {"alpha": optuna.distributions.FloatDistribution(0.001, 1.0, log=True),
                                   "norm": optuna.distributions.CategoricalDistribution([False, True])}
    assert 0.001 <= params["alpha"] <= 1.0 and params["norm"] in (False, True)


@pytest.mark.parametrize("spec,message", [
    ({"C": {"type": "floatt", "low": 1, "high": 2}}, "search_space.logreg.C: type must be one of float, int"),
    ({"C": {"type": "float", "low": 2.0, "high": 1.0}}, "search_space.logreg.C:"),
    ({"C": {"type": "float", "lo": 1.0, "high": 2.0}}, "search_space.logreg.C:"),
    ({"Cc": {"type": "float", "low": 1.0, "high": 2.0}}, "search_space.logreg.Cc: hp: ['Cc'] are not params"),
])
def test_bad_spec_names_the_field(monkeypatch, spec, message):
    monkeypatch.setattr(tune, "family_config", lambda family: {"search_space": {"logreg": spec}})
    with pytest.raises(UsageError) as error:
        TuneArgs(family="traditional", model="logreg")
    assert message in str(error.value)


def test_model_without_space_and_bad_storage():
    with pytest.raises(UsageError, match="model: no search_space for 'svm'"):
        search_space("traditional", "svm")
    with pytest.raises(ValueError, match="storage: not a database URL"):
        TuneArgs(storage="postgres://user@host/db")
    with pytest.raises(ValueError, match="unknown field"):
        TuneArgs(family_args="epochs=3")


def test_a_study_keeps_one_objective():
    study = optuna.create_study(direction="maximize", study_name="s")
    tune.check_objective(study, "rank_score")
    tune.check_objective(study, "rank_score")                      # a second worker with the same objective joins
    assert study.user_attrs["objective"] == "rank_score"
    with pytest.raises(UsageError, match="study 's' maximises rank_score, this worker's val_custom_score"):
        tune.check_objective(study, "val_custom_score")           # e.g. ood_sources=none: values not comparable
