"""Model families: each is a plug-in behind `promptcls.families.base.Family`.

Families are imported lazily by name, so training a TF-IDF model never imports TensorFlow or torch.
"""

from __future__ import annotations

import importlib

FAMILIES = {
    "traditional": "promptcls.families.traditional:TraditionalFamily",
    "transformers": "promptcls.families.transformers_family:TransformersFamily",
    "deep_learning": "promptcls.families.deep_learning:DeepLearningFamily",
}


def get_family(name: str):
    """Instantiate a family by name; unknown names fail listing the valid ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; valid: {', '.join(FAMILIES)}")
    module, _, cls = FAMILIES[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
