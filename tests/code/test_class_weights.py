"""One class-weight grammar for every family: none, balanced, or one weight > 0 per label."""

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from promptcls import LABELS
from promptcls.class_weights import class_weight_vector, parse_class_weights, sample_weights
from promptcls.families import FAMILIES, get_family


@pytest.mark.parametrize("spec, parsed", [("none", "none"), ("balanced", "balanced"), ("1,2,4", [1.0, 2.0, 4.0]),
                                          ("0.5, 1, 1e1", [0.5, 1.0, 10.0]), ("[1,1,2]", [1.0, 1.0, 2.0])])
def test_valid_specs(spec, parsed):
    assert parse_class_weights(spec) == parsed


@pytest.mark.parametrize("spec", ["1,0,1", "1,-1,1", "1,2", "1,2,3,4", "a,b,c", "inf,1,1", "nan,1,1", "", "Balanced"])
def test_invalid_specs_name_the_argument_and_grammar(spec):
    with pytest.raises(ValueError, match=rf"focal_alpha must be none, balanced or {len(LABELS)} comma-separated "
                                         r"weights > 0"):
        parse_class_weights(spec, "focal_alpha")


def test_balanced_is_sklearns_formula_and_rows_get_their_class_weight():
    labels = np.array([0] * 7 + [1] * 2 + [2] * 3)
    expected = compute_class_weight("balanced", classes=np.arange(len(LABELS)), y=labels)
    np.testing.assert_allclose(class_weight_vector("balanced", labels), expected)
    np.testing.assert_allclose(sample_weights("balanced", labels), expected[labels])
    assert class_weight_vector("none", labels) is None and sample_weights("none", labels) is None
    assert np.isfinite(class_weight_vector("balanced", np.array([0, 0, 2]))).all()  # a missing class stays finite


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_uses_the_same_grammar(family):
    args_class = get_family(family).args_class
    assert args_class(sample=30, class_weights="1,2,4").class_weights == "1,2,4"
    with pytest.raises(ValueError, match="weights > 0"):
        args_class(sample=30, class_weights="1,0,1")
