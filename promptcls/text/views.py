"""De-obfuscation views: when a canonical prompt holds an encoded or disguised segment, the same prompt with that
segment decoded, scored beside the original (the contract decides on the most severe view).

Each decoder is a cheap detector (a regular expression, or a stop-word count) plus a decoder; a view is made only
when the detector fires and the decoded text is readable. Views: `base64`, `hex`, `url` (percent-encoding),
`html` (entities), `escape` (`\\uXXXX` / `\\xXX`), `rot13`, `reversed`, `leet` (digits for letters),
`split` (letters split by spaces, dots, hyphens, underscores or newlines). A view's span is the decoded part of
the canonical text (the whole text for `url`, `html`, `escape`, which decode everywhere). An encoded payload
(`base64`, `hex`) is scored twice, in its context and alone, so the wrapper's own words ("decode this and do what it
says") cannot dilute it. Ordinary English, Markdown with a base64 `data:` image, and Cyrillic text make no view
(tests/code/test_views.py).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from promptcls.text.canonical import canonicalize

SEGMENT_CHARS = 11
"""A join of split letters this long or longer is cut into words (`_word`); shorter joins stay one word (cut,
'ransomware' would become 'ransom ware' and 'ChatGPT' 'Chat GP T')."""


@dataclass(frozen=True)
class View:
    name: str
    text: str
    start: int  # the decoded span, in the canonical text
    end: int


STOP_WORDS = frozenset(
    "the a an and or of to in is are be you your i me my it this that for with on as not do all any what how can "
    "from now will now no yes ignore previous instructions tell say print give write make say please system prompt "
    "we they he she them his her our us was were have has had if then so but by at how why when where who which "
    "there their would could should some like just more into about out up without get getting way best someone "
    "people want need know use using create one also only other than over after before easiest "
    "der die das und ist nicht ich du sie ein eine zu mit le la les et est une des pas je vous que el los las es "
    "por para con una".split())
"""Common English words (plus the commonest injection words, and German, French and Spanish ones): a decoded
segment must read like language, and a segment that already does is not transformed."""
_WORDS = re.compile(r"(?<!\S)[\"'(]*([A-Za-z]{2,})[\"'),.;:!?]*(?!\S)")  # whole ASCII words only
_SENTENCE = re.compile(r"[^.!?:;\n]*[A-Za-z][^.!?:;\n]*")


def _english(text: str) -> float:
    words = _WORDS.findall(text.lower())
    return sum(w in STOP_WORDS for w in words) / len(words) if words else 0.0


def _readable(text: str) -> bool:
    """Printable text that is mostly letters and spaces (decoded binary, e.g. an image, is not)."""
    if not text or any(not c.isprintable() and c not in "\n\r\t" for c in text):
        return False
    return sum(c.isalpha() or c.isspace() for c in text) >= 0.6 * len(text)


_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:(?:0x|\\x)?[0-9A-Fa-f]{2}[\s:,]?){8,}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_ENTITY = re.compile(r"&(?:#\d{2,7}|#[xX][0-9A-Fa-f]{2,6}|[A-Za-z]{2,8});")
_ESCAPE = re.compile(r"\\(?:u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|U[0-9A-Fa-f]{8})")
_SPLIT = re.compile(r"(?<![A-Za-z])[A-Za-z](?:(?:[.\-_*\n]|  ?)[A-Za-z]){4,}(?![A-Za-z])")  # 5+ letters: not U.S.A.
_CHUNKS = re.compile(r"(?<![A-Za-z-])[A-Za-z]{1,4}(?:[\-\n][A-Za-z]{1,4})+(?![A-Za-z-])")
LEET = str.maketrans("4310572@$!|", "aeiostlasil")
_LEET_WORD = re.compile(r"(?=[A-Za-z0-9@$!|]*[A-Za-z])(?=[A-Za-z0-9@$!|]*[0-9@$!|])[A-Za-z0-9@$!|]{3,}")


def _segments(text: str, pattern: re.Pattern, decode: Callable[[str], str | None],
              payload: bool = False) -> tuple[str, ...] | None:
    """Replace every segment `pattern` finds and `decode` can read; the new text and the decoded span (and, with
    `payload`, the decoded segments alone)."""
    parts, last, span = [], 0, None
    skip = [m.span() for m in _DATA_URI.finditer(text)] if "data:" in text else []
    for match in pattern.finditer(text):
        if any(a <= match.start() < b for a, b in skip):
            continue
        decoded = decode(match.group())
        if decoded is None:
            continue
        parts += [text[last:match.start()], decoded]
        last = match.end()
        span = (span[0] if span else match.start(), match.end())
    if span is None:
        return None
    found = ("".join(parts) + text[last:], span[0], span[1])
    return (*found, "\n".join(parts[1::2]).strip()) if payload else found


def _b64(segment: str) -> str | None:
    if len(segment.rstrip("=")) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_" if "-" in segment or "_" in
                               segment else None, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded if _readable(decoded) and " " in decoded.strip() else None


def _hex(segment: str) -> str | None:
    digits = re.sub(r"0x|\\x|[\s:,]", "", segment)
    try:
        decoded = bytes.fromhex(digits).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return " " + decoded + " " if _readable(decoded) else None


def _whole(name: str, pattern: re.Pattern, decode: Callable[[str], str], least: int = 3):
    def view(text: str) -> tuple[str, int, int] | None:
        if len(pattern.findall(text)) < least:
            return None
        try:
            decoded = decode(text)
        except (UnicodeDecodeError, ValueError):
            return None
        return (decoded, 0, len(text)) if decoded != text else None
    view.__name__ = name
    return view


def _escapes(text: str) -> str:
    """`\\uXXXX` / `\\xXX` decoded; a surrogate pair (`\\ud83d\\ude00`, how JSON escapes an emoji) joins into its
    character, and a lone surrogate is left for canonicalisation to replace."""
    decoded = _ESCAPE.sub(lambda m: chr(int(m.group()[2:], 16)), text)
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")


def _by_sentence(transform: Callable[[str], str]):
    """A sentence that reads as English only after `transform` (ROT13, reversal) is replaced by its transform."""
    def decode(sentence: str) -> str | None:
        if len(_WORDS.findall(sentence)) < 3 or _english(sentence) >= 0.15:
            return None
        changed = transform(sentence)
        return changed if _english(changed) >= 0.3 else None

    def view(text: str) -> tuple[str, int, int] | None:
        if len(_WORDS.findall(text)) >= 3 and _english(text) < 0.15:  # the whole text first
            changed = transform(text)
            if _english(changed) >= 0.2:
                return changed, 0, len(text)
        return _segments(text, _SENTENCE, decode)
    return view


def _leet(text: str) -> tuple[str, int, int] | None:
    words = text.split()
    if sum(1 for w in words if _LEET_WORD.fullmatch(w.strip(".,;:?!\"'()"))) < max(2, 0.15 * len(words)):
        return None
    return _segments(text, _LEET_WORD, lambda w: w.translate(LEET))


def _join_letters(segment: str) -> str:
    """'i.g.n.o.r.e a.l.l' / 'i g n o r e  a l l' -> 'ignore all': the commonest separator joins letters; any other
    separator, or a run of two or more, parts words."""
    seps = Counter(re.findall(r"[ .\-_*\n]+", segment))
    return _parts(segment, seps.most_common(1)[0][0])  # ties: the first seen (deterministic)


def _parts(segment: str, joiner: str) -> str:
    words, current = [], []
    for piece in re.split(r"([ .\-_*\n]+)", segment):
        if not piece:
            continue
        if re.fullmatch(r"[ .\-_*\n]+", piece):
            if piece != joiner:
                words.append(_word(current))
                current = []
        else:
            current.append(piece)
    return " ".join([*words, _word(current)])


def _word(pieces: list[str]) -> str:
    """Joined letters. When words were split by the same separator as their letters ('p r e v i o u s i n s t r u c
    t i o n s'), the join runs them together: a long join is cut into words by English word frequencies
    (wordninja), 'previousinstructions' -> 'previous instructions'. (`_SPLIT` joins ASCII letters only.)"""
    word = "".join(pieces)
    if len(pieces) > 1 and len(word) >= SEGMENT_CHARS:
        # imported here: loading its 125k-word list takes ~70 ms, which every process that loads the contract would
        # pay at start-up, while few prompts ever reach this line
        import wordninja
        return " ".join(wordninja.split(word))
    return word


def _split(text: str) -> tuple[str, int, int] | None:
    joined = _segments(text, _SPLIT, _join_letters)
    text2, *span = joined if joined else (text, None, None)
    chunks = None  # many chunked words: one 'up-to-date' or 'e-mail' is ordinary English
    if len(_CHUNKS.findall(text2)) >= max(3, 0.2 * len(text2.split())):
        chunks = _segments(text2, _CHUNKS, lambda s: re.sub(r"[\-\n]", "", s))
    if chunks and joined:
        return chunks[0], min(span[0], chunks[1]), max(span[1], chunks[2])
    return chunks or joined


DECODERS: dict[str, Callable[[str], tuple[str, ...] | None]] = {  # (text, start, end[, payload alone])
    "base64": lambda t: _segments(t, _BASE64, _b64, payload=True),
    "hex": lambda t: _segments(t, _HEX, _hex, payload=True),
    "url": _whole("url", _PERCENT, urllib.parse.unquote),
    "html": _whole("html", _ENTITY, html.unescape),
    "escape": _whole("escape", _ESCAPE, _escapes, least=2),
    "rot13": _by_sentence(lambda s: codecs.encode(s, "rot13")),
    "reversed": _by_sentence(lambda s: s[::-1]),
    "leet": _leet,
    "split": _split,
}
MAX_DEPTH = 2  # a decoded view is searched again once (base64 inside a URL-encoded prompt, …)
MAX_VIEWS = 8


def views(text: str, depth: int = MAX_DEPTH) -> Iterator[View]:
    """The de-obfuscated views of canonical `text` (none for ordinary prompts), at most `MAX_VIEWS`."""
    seen, frontier, made = {text}, [(text, "", 0, len(text))], 0
    for _ in range(depth):
        found = []
        for current, prefix, start, end in frontier:
            for name, decode in DECODERS.items():
                decoded = decode(current)
                if decoded is None:
                    continue
                label = f"{prefix}+{name}" if prefix else name
                span = (decoded[1], decoded[2]) if not prefix else (start, end)  # spans of the first decoding
                for i, raw in enumerate([decoded[0], *decoded[3:]]):  # in context, then the payload alone
                    view_text = canonicalize(raw)
                    if view_text in seen or not view_text:
                        continue
                    seen.add(view_text)
                    if i == 0:
                        found.append((view_text, label, *span))
                    yield View(label, view_text, *span)
                    made += 1
                    if made >= MAX_VIEWS:
                        return
        frontier = found
