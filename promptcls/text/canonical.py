"""Canonicalisation: the one text normalisation training and serving use (`promptcls.data.normalize_text` is this
module's `canonicalize`).

Steps, in order:

1. remove every character that renders as nothing: Unicode category Cf (zero-width characters, bidi controls, tag
   characters, Arabic/Syriac format characters U+0600–0605, U+206A–206F, U+FFF9–FFFB, …), variation selectors
   (U+FE00–FE0F, U+E0100–E01EF), the combining grapheme joiner and the Hangul fillers (`INVISIBLE`);
2. fold combining marks that decorate Latin words: a text or a word whose letters mostly carry diacritics ("ïġṅöṙë"), or any
   letter with three or more stacked marks ("Zalgo"), loses its marks; ordinary accented words ("München", "déjà",
   "été", Vietnamese "được") keep theirs;
3. NFKC (full-width, mathematical and other compatibility forms to plain letters);
4. confusables from Unicode's UTS #39 data (the `confusable-homoglyphs` package) mapped to ASCII, but only where
   they disguise Latin text: in a word that mixes them with ASCII letters ("іgnоrе"), or in a word made only of
   look-alikes when the text has more ASCII letters than letters of other scripts; genuine Cyrillic or Greek text
   is never rewritten;
5. line separators other than "\n" and "\r" (U+2028, U+2029, NEL U+0085, vertical tab, form feed and the ASCII
   file/group/record separators, which `str.splitlines` breaks lines at) become "\n", so a token never holds a line
   break that a vocabulary file would split in two (Keras' TextVectorization refused such a saved vocabulary);
6. outer whitespace stripped.

Before all of these, a lone surrogate (U+D800–DFFF: what a decoded `\ud83d` escape or JSON's "\ud800" leaves,
which no UTF-8 encoder accepts, so TensorFlow and tokenizers refuse the whole batch) becomes U+FFFD.

ASCII text takes a fast path (only steps 5 and 6): ordinary English prompts pay nothing.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from functools import cache
from importlib.resources import files

INVISIBLE = (
    "\u00ad"                      # soft hyphen
    "\u034f"                      # combining grapheme joiner
    "\u061c"                      # Arabic letter mark
    "\u115f\u1160\u3164\uffa0"    # Hangul fillers (render as nothing)
    "\u180e"                      # Mongolian vowel separator
    "\u200b\u200c\u200d"          # zero-width space / non-joiner / joiner
    "\u200e\u200f"                # left-to-right / right-to-left mark
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner, invisible operators
    "\u2066\u2067\u2068\u2069"      # bidi isolates
    "\ufeff"                      # byte-order mark / zero-width no-break space
    "\u17b4\u17b5"                # Khmer inherent vowels (category Mn, render as nothing)
)
"""Characters that render as nothing and are named here (all of category Cf is removed too)."""
VARIATION_SELECTORS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"


@cache
def _removed() -> re.Pattern:
    """One character class: every Cf character, variation selectors, `INVISIBLE` (built once per process)."""
    cf, start = [], None
    for code in range(sys.maxunicode + 2):
        is_cf = code <= sys.maxunicode and unicodedata.category(chr(code)) == "Cf"
        if is_cf and start is None:
            start = code
        elif not is_cf and start is not None:
            cf.append(f"{re.escape(chr(start))}-{re.escape(chr(code - 1))}" if code - 1 > start
                      else re.escape(chr(start)))
            start = None
    return re.compile(f"[{''.join(cf)}{VARIATION_SELECTORS}{re.escape(INVISIBLE)}]")


def remove_invisible(text: str) -> str:
    return _removed().sub("", text)


_ASCII_LETTER = re.compile(r"[A-Za-z]")
_LATIN_WORD = re.compile(r"(?:[A-Za-z][\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]*)+")
_MARK = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_MARKED_LETTER = re.compile(r"[A-Za-z](?=" + _MARK.pattern + ")")
_STACKED = re.compile(_MARK.pattern + "{3,}")
DECORATED_SHARE = 0.5
"""A Latin word with 4+ decorated letters loses its diacritics when more than this share of its letters carry one
("été", "được", Polish "gęślą" keep theirs: at most three), as does one whose 3+ letters all carry one; so does a whole text with more than this share decorated
(20+ letters; Vietnamese, the most decorated Latin orthography, has about a third)."""


def fold_marks(text: str) -> str:
    """Strip combining marks from Latin words that are mostly decorated, or that stack marks on one letter."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    if not _MARK.search(decomposed):
        return text
    letters = len(_ASCII_LETTER.findall(decomposed))
    if letters >= 20 and len(_MARKED_LETTER.findall(decomposed)) > DECORATED_SHARE * letters:
        return unicodedata.normalize("NFC", _MARK.sub("", decomposed))  # the whole text is decorated

    def fold(match: re.Match) -> str:
        word = match.group()
        if not _MARK.search(word):  # most words (fast path)
            return word
        letters = sum(c.isascii() for c in word)
        marked = len(_MARKED_LETTER.findall(word))
        stacked = _STACKED.search(word)  # Vietnamese stacks two marks on a letter
        if stacked or (marked >= 4 and marked > DECORATED_SHARE * letters) or marked == letters >= 3:
            return _MARK.sub("", word)
        return word

    return unicodedata.normalize("NFC", _LATIN_WORD.sub(fold, decomposed))


def _latin_letter(c: str) -> bool:
    """Latin-1 Supplement, Latin Extended-A/B and Latin Extended Additional letters."""
    return "\u00c0" <= c <= "\u024f" or "\u1e00" <= c <= "\u1eff"


@cache
def confusables() -> dict[str, str]:
    """Non-ASCII characters that UTS #39 lists as confusable with one ASCII letter or digit, mapped to it (a letter
    the character's Unicode name ends in first (CYRILLIC CAPITAL LETTER ... I -> I), then a letter of the same case,
    then any letter, then a digit). Accented Latin letters are not in the data."""
    data = json.loads(files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8"))
    table = {}
    # a name such as 'CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I' ends in the Latin letter it imitates
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii() or not char.isalpha() or _latin_letter(char):
            continue  # Latin letters (Turkish ı, Polish ł, …) are spelling, not disguise
        targets = [g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalnum()]
        named = unicodedata.name(char, "").rsplit(" ", 1)[-1]
        named = named.lower() if char.islower() else named
        ranked = sorted(targets, key=lambda t: (t != named, not t.isalpha(), t.islower() != char.islower()))
        if ranked:  # UTS #39 skeletons write capital I as 'l': an upper-case look-alike of 'l' is an I
            table[char] = "I" if ranked[0] == "l" and char.isupper() else ranked[0]
    return table


_WORD = re.compile(r"[^\W\d_]+")


def _other_script(c: str) -> bool:
    """A letter of a script other than Latin."""
    return c.isalpha() and not c.isascii() and not _latin_letter(c)


def fold_confusables(text: str) -> str:
    """Map UTS #39 look-alikes to ASCII only where they disguise Latin text, never in genuine other-script text."""
    table = confusables()
    if table.keys().isdisjoint(text):
        return text
    latin = len(_ASCII_LETTER.findall(text))
    other = sum(1 for c in text if _other_script(c))

    def fold(match: re.Match) -> str:
        word = match.group()
        if table.keys().isdisjoint(word):
            return word
        if _ASCII_LETTER.search(word) or (latin > other and all(c in table for c in word)):
            return "".join(table.get(c, c) for c in word)
        return word

    return _WORD.sub(fold, text)


_SURROGATE = re.compile("[\ud800-\udfff]")
LINE_BREAKS = str.maketrans(dict.fromkeys("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", "\n"))
"""Characters `str.splitlines` breaks a line at, besides "\n" and "\r": each becomes "\n"."""


def canonicalize(text: str) -> str:
    """The canonical form of a prompt (see the module docstring for the steps)."""
    if text.isascii():
        return text.translate(LINE_BREAKS).strip()
    text = fold_marks(remove_invisible(_SURROGATE.sub("\ufffd", text)))  # removal first: it can split a word
    return fold_confusables(unicodedata.normalize("NFKC", text)).translate(LINE_BREAKS).strip()
