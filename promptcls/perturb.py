"""Text perturbations for behavioural tests: invariance edits (casing, whitespace, punctuation) and the evasion
tricks attackers use against prompt guards (invisible characters, homoglyphs, spaced-out letters, leetspeak).

Every perturbation is a pure function `(text, rng) -> text`, deterministic for a seeded `random.Random`, and
`EVASIONS` / `INVARIANCES` name them for the suite and its CSV.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from promptcls.text.obfuscate import CYRILLIC, GREEK, OBFUSCATIONS

Perturbation = Callable[[str, random.Random], str]

ZERO_WIDTH_SPACE = "\u200b"
INVISIBLE_MIX = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
"""Zero-width space / non-joiner / joiner, word joiner, BOM, soft hyphen."""
BIDI = ("\u200e", "\u200f", "\u202a", "\u202c", "\u2066", "\u2069")
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "A": "4", "E": "3", "I": "1", "O": "0",
        "S": "5", "T": "7"}
_WORD = re.compile(r"[A-Za-z]{3,}")


def _inside_words(text: str, rng: random.Random, chars: tuple[str, ...]) -> str:
    """Insert one of `chars` between every pair of letters of each word of 3+ letters."""
    return _WORD.sub(lambda m: "".join(c + rng.choice(chars) for c in m.group()[:-1]) + m.group()[-1], text)


def zero_width(text: str, rng: random.Random) -> str:
    """U+200B ZERO WIDTH SPACE between the letters of every word ("i\u200bg\u200bn\u200bo\u200br\u200be")."""
    return _inside_words(text, rng, (ZERO_WIDTH_SPACE,))


def invisible_mix(text: str, rng: random.Random) -> str:
    """A random mix of zero-width joiner/non-joiner, word joiner, BOM and soft hyphen inside every word."""
    return _inside_words(text, rng, INVISIBLE_MIX)


def bidi_controls(text: str, rng: random.Random) -> str:
    """Directional marks, embeddings and isolates inside words (they render as nothing in LTR text)."""
    return _inside_words(text, rng, BIDI)


def _substitute(text: str, rng: random.Random, table: dict[str, str], share: float) -> str:
    """Replace each character that has a look-alike in `table` with probability `share` (at least one)."""
    positions = [i for i, c in enumerate(text) if c in table]
    if not positions:
        return text
    chosen = {i for i in positions if rng.random() < share} or {rng.choice(positions)}
    return "".join(table[c] if i in chosen else c for i, c in enumerate(text))


def homoglyph_cyrillic(text: str, rng: random.Random) -> str:
    """Cyrillic look-alikes (а е о р с х у і ѕ …) for about half of the Latin letters that have one."""
    return _substitute(text, rng, CYRILLIC, 0.5)


def homoglyph_greek(text: str, rng: random.Random) -> str:
    """Greek look-alikes (ο ν ι Α Ε Ο Ρ …) for about half of the Latin letters that have one."""
    return _substitute(text, rng, GREEK, 0.5)


def spaced_letters(text: str, rng: random.Random) -> str:
    """Letters of every word of 4+ letters separated by spaces ("i g n o r e")."""
    return re.sub(r"[A-Za-z]{4,}", lambda m: " ".join(m.group()), text)


def leetspeak(text: str, rng: random.Random) -> str:
    """Digits for letters (a→4, e→3, i→1, o→0, s→5, t→7) in about 70% of the places they fit."""
    return _substitute(text, rng, LEET, 0.7)


EVASIONS: dict[str, Perturbation] = {
    "zero_width": zero_width, "invisible_mix": invisible_mix, "bidi_controls": bidi_controls,
    "homoglyph_cyrillic": homoglyph_cyrillic, "homoglyph_greek": homoglyph_greek,
    "spaced_letters": spaced_letters, "leetspeak": leetspeak,
}
"""Evasion perturbations, applied to malicious prompts the model flags correctly (30 kinds: the 7 above plus
`promptcls.text.obfuscate.OBFUSCATIONS`, registered at the end of this module)."""


def lower(text: str, rng: random.Random) -> str:
    return text.lower()


def upper(text: str, rng: random.Random) -> str:
    return text.upper()


def extra_whitespace(text: str, rng: random.Random) -> str:
    """Doubled spaces between words, plus leading and trailing whitespace."""
    return "  " + re.sub(r" +", "  ", text) + " \n"


def punctuation(text: str, rng: random.Random) -> str:
    """Trailing punctuation dropped, or (when there is none) a question/exclamation mark added."""
    stripped = text.rstrip(".!?")
    return stripped if stripped != text else text + rng.choice(("?", "!"))


INVARIANCES: dict[str, Perturbation] = {
    "lower": lower, "upper": upper, "extra_whitespace": extra_whitespace, "punctuation": punctuation,
}
"""Surface edits that must not change the label (paraphrases are hand-written in conf/behaviour.yaml)."""


EVASIONS.update(OBFUSCATIONS)
