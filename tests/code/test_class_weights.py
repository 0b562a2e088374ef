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


def test_balanced_sources_weigh_the_same_within_their_class_and_keep_the_class_total():
    import pandas as pd

    from promptcls.class_weights import source_balanced
    from promptcls.names import FEEDBACK_SOURCE

    train = pd.DataFrame({"label": [0] * 6 + [2] * 4, "source": ["big"] * 5 + ["small"] + ["a", "a", "a", "b"]})
    base = sample_weights("balanced", train["label"].to_numpy())
    weights = source_balanced(base, train, "balanced")
    totals = pd.Series(weights).groupby([train["label"], train["source"]]).sum()
    assert totals[0, "big"] == pytest.approx(totals[0, "small"]) and totals[2, "a"] == pytest.approx(totals[2, "b"])
    for label in (0, 2):  # the class weights' totals are unchanged
        rows = (train["label"] == label).to_numpy()
        assert weights[rows].sum() == pytest.approx(base[rows].sum())
    assert weights[5] == pytest.approx(5 * weights[0])  # the lone row of `small` weighs as much as all of `big`
    assert source_balanced(base, train, "none") is base
    unweighted = source_balanced(None, train, "balanced")  # class_weights=none: every row started at 1
    assert unweighted[rows].sum() == pytest.approx(4) and unweighted[9] == pytest.approx(3 * unweighted[6])
    with_feedback = pd.concat([train, pd.DataFrame({"label": [2], "source": [FEEDBACK_SOURCE]})], ignore_index=True)
    weights = source_balanced(np.full(len(with_feedback), 2.0), with_feedback, "balanced")
    assert weights[-1] == 2.0 and weights[6:10].sum() == pytest.approx(8)  # a feedback row keeps its weight


def test_sqrt_sources_weigh_as_the_root_of_their_size_within_their_class():
    import pandas as pd

    from promptcls.class_weights import source_balanced

    train = pd.DataFrame({"label": [0] * 10 + [2] * 3, "source": ["big"] * 9 + ["small"] + ["a"] * 3})
    weights = source_balanced(None, train, "sqrt")
    totals = pd.Series(weights).groupby([train["label"], train["source"]]).sum()
    assert totals[0, "big"] == pytest.approx(3 * totals[0, "small"])  # sqrt(9) : sqrt(1), not 9 : 1 nor 1 : 1
    assert weights[:10].sum() == pytest.approx(10) and weights[10:] == pytest.approx([1, 1, 1])  # class totals kept


@pytest.mark.parametrize("family, default", [("traditional", "balanced"), ("deep_learning", "none"),
                                             ("transformers", "balanced")])
def test_every_family_checks_source_weights(family, default):
    args_class = get_family(family).args_class
    assert args_class(sample=30).source_weights == default
    with pytest.raises(ValueError, match="source_weights must be one of none, sqrt, balanced, got 'balance'"):
        args_class(sample=30, source_weights="balance")


def test_source_repeats_draw_each_row_as_often_as_its_weight():
    import pandas as pd

    from promptcls.class_weights import source_balanced, source_repeats

    train = pd.DataFrame({"text": [f"t{i}" for i in range(1100)], "label": [0] * 1000 + [2] * 100,
                          "source": ["big"] * 900 + ["small"] * 100 + ["a"] * 60 + ["b"] * 40})
    drawn = source_repeats(train, "balanced", seed=0)
    counts = drawn.groupby(["label", "source"]).size()
    assert counts[0, "big"] == pytest.approx(500, abs=45) and counts[0, "small"] == 500  # 5 copies of each
    assert counts[2, "a"] == pytest.approx(50, abs=12) and counts[2, "b"] == pytest.approx(50, abs=9)
    per_row = drawn[drawn["source"] == "b"].groupby("text").size()  # 40 rows of weight 5/4: once or twice each
    assert len(per_row) == 40 and set(per_row) == {1, 2}
    assert drawn.loc[drawn["source"] == "big", "text"].is_unique  # a large source is subsampled, never repeated
    weights = source_balanced(None, train, "balanced")
    assert counts[0, "small"] / 100 == pytest.approx(weights[950])
    assert source_repeats(train, "none", seed=0) is train
    one_source = train.assign(source="only")  # one source a class: every row once, in order
    pd.testing.assert_frame_equal(source_repeats(one_source, "balanced", seed=0), one_source)
    pd.testing.assert_frame_equal(source_repeats(train, "balanced", seed=0), drawn)  # seeded
