"""The model card as a registry description: PostgreSQL and MySQL enforce the column's 5,000 characters."""

from promptcls.card import DESCRIPTION_LIMIT, registry_description


def test_short_card_is_kept_whole():
    card = "# Model card\n\n## Metrics\n" + "x" * 100
    assert registry_description(card, "r1") == card


def test_long_card_is_cut_at_a_section_with_a_pointer_to_the_full_card():
    sections = [f"## Section {i}\n" + "line of text\n" * 40 for i in range(20)]
    card = "# Model card\n\n" + "\n".join(sections)
    assert len(card) > DESCRIPTION_LIMIT
    short = registry_description(card, "abc123")
    assert len(short) <= DESCRIPTION_LIMIT
    assert short.startswith("# Model card") and "`model_card.md` in run `abc123`" in short
    kept = short.split("\n\n*(Card shortened")[0]
    assert card.startswith(kept) and kept.endswith("line of text")  # whole sections only
