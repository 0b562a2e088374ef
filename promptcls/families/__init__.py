"""Model families: each is a plug-in behind `promptcls.families.base.Family`.

Families are imported lazily by name, so training a TF-IDF model never imports TensorFlow or torch.

Adding a family = one module (a `Family` subclass, its `TrainArgs` subclass and `CONFIG_SCHEMA`, the pydantic
schema of its YAML) + one YAML (`promptcls/conf/<name>.yaml`) + one entry in `FAMILIES` below. The generic
`train` entry point (`mlflow run . -e train -P family=<name>`), `tune`, `source_holdout`, the main job (`families`
param) and tests/code/test_configs.py pick it up from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Registration:
    target: str
    """`module:Class` of the Family subclass."""
    main_job: Callable[[object], dict]
    """What the main job trains of this family, from its MainArgs (promptcls/pipeline.py), besides the common
    arguments (data, external, sample, seed, experiment)."""

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]


FAMILIES = {
    "traditional": Registration("promptcls.families.traditional:TraditionalFamily",
                                lambda a: {"model": "all", "cv_folds": a.cv_folds,
                                           "augment": a.traditional_augment}),
    "transformers": Registration("promptcls.families.transformers_family:TransformersFamily",
                                 lambda a: {"model": "minilm", "max_epochs": a.transformer_epochs,
                                            "evals_per_epoch": a.transformer_evals_per_epoch,
                                            "patience": a.transformer_patience,
                                            "max_train_minutes": a.transformer_max_minutes,
                                            "max_steps": a.transformer_max_steps,
                                            "freeze_layers": a.transformer_freeze_layers,
                                            "augment": a.transformer_augment,
                                            "export_onnx": a.transformer_export_onnx,
                                            # SHAP through MiniLM costs ~200 forward passes a prompt on CPU
                                            "explain_samples": 10}),
    "deep_learning": Registration("promptcls.families.deep_learning:DeepLearningFamily",
                                  lambda a: {"model": a.deep_learning_model}),
}


def _registration(name: str) -> Registration:
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def get_family(name: str):
    """Instantiate a family by name; unknown names fail listing the valid ones."""
    module, _, cls = _registration(name).target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def config_schema(name: str):
    """The pydantic schema of `promptcls/conf/<name>.yaml`: the family module's `CONFIG_SCHEMA`."""
    return importlib.import_module(_registration(name).module).CONFIG_SCHEMA
