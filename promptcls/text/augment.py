"""Training augmentation (TrainArgs `augment`): `evasion`, `indirect`, or both (`evasion,indirect`).

Evasion (`augment=evasion`): perturbed copies of a share of the training rows of *every*
class (`conf/robustness.yaml` `augment.share`), so that a perturbation is not itself a cue for "malicious".

Each chosen row gets one evasion kind drawn uniformly from `promptcls.perturb.EVASIONS`; the copy is canonicalised
like every training text (`normalize_text`) and keeps its row's label, source and near-duplicate group; a copy that
canonicalisation turns back into its original (zero-width characters, homoglyphs, …) is dropped. Only the training
split is augmented: validation and test stay as drawn.

For a model that reads only the first `window_chars` characters (a truncating CNN or transformer), a copy that puts
benign text before its prompt (`benign_preamble`, `long_document`) is cut to the window that ends with the prompt
(`windows.last_window`): whole, such a copy would be truncated to its benign filler under the prompt's label, and
the contract shows that model long inputs as windows of that size anyway.

Indirect injection (`augment=indirect`, `conf/robustness.yaml` `augment.indirect`): the corpus' only injections
inside a document to work on are one held-out source, so no model learned that an instruction planted in a passage
is an attack. Each benign training row of a `documents` genre gets a malicious copy with an injection of the training
split (a malicious row of a `payloads` genre) planted at a random sentence boundary of its passage (after the first
blank line: the task stays first). For a model that reads `window_chars`, the copy is a window around the injection,
and the same window without it is added as benign, so that a passage cut out of a document is no cue either. Copies
take the source `augment_indirect` (one source of each class to `source_weights`) and their document's group.
"""

from __future__ import annotations

import random

import pandas as pd

from promptcls.data import normalize_text
from promptcls.perturb import EVASIONS
from promptcls.ood.sources import genre_of, sources_config
from promptcls.text.settings import robustness
from promptcls.text.windows import cuts, last_window

INDIRECT_SOURCE = "augment_indirect"


def augment_frame(train: pd.DataFrame, seed: int,
                  window_chars: int | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """`train` plus its perturbed copies (shuffled in), and the number of copies per kind and per class.
    `window_chars`: what the model reads of a text (None: all of it); see the module docstring."""
    rng = random.Random(seed)
    share = float(robustness()["augment"]["share"])
    chosen = train.groupby("label", group_keys=False).sample(frac=share, random_state=seed)
    kinds = [rng.choice(list(EVASIONS)) for _ in range(len(chosen))]
    copies = chosen.copy()
    copies["text"] = [normalize_text(EVASIONS[k](t, rng)) for k, t in zip(kinds, chosen["text"])]
    if window_chars:
        copies["text"] = [last_window(c, len(t), window_chars) if c.endswith(t) else c
                          for c, t in zip(copies["text"], chosen["text"])]
    keep = (copies["text"].str.len() > 0) & (copies["text"] != chosen["text"])  # undone by canonicalisation: no copy
    copies, kinds = copies[keep.to_numpy()], [k for k, ok in zip(kinds, keep) if ok]
    counts = {f"augment_rows_{k}": kinds.count(k) for k in EVASIONS}
    counts.update({f"augment_rows_c{c}": int((copies["label"] == c).sum()) for c in sorted(train["label"].unique())})
    counts["augment_rows"] = len(copies)
    out = pd.concat([train, copies], ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return out, counts


def _around(before: str, payload: str, after: str, size: int, rng: random.Random) -> tuple[str, str]:
    """The end of `before` and the start of `after` that fit in a `size` window with `payload` between them (cut at
    sentence starts and spaces; a random share of the room before the payload)."""
    room = max(0, size - len(payload) - 2)
    head_room = rng.randint(0, room)
    starts = [c for c in cuts(before, size) if len(before) - c <= head_room] if before else []
    head = before[min(starts):] if starts else ""
    tail_room = room - len(head)
    tail = after if len(after) <= tail_room else after[:max(0, after.rfind(" ", 0, tail_room + 1))]
    return head.strip(), tail.strip()


def indirect_frame(train: pd.DataFrame, seed: int,
                   window_chars: int | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Copies of the documents of `train` with an injection of `train` planted inside (label 2), and for a model
    that reads `window_chars`, the same windows without it (label 0); see the module docstring. Not shuffled in."""
    settings = robustness()["augment"]["indirect"]
    known = set(sources_config()["genres"].values())
    for key in ("documents", "payloads"):
        if set(settings[key]) - known:
            raise ValueError(f"promptcls/conf/robustness.yaml augment.indirect.{key}: unknown genres "
                             f"{sorted(set(settings[key]) - known)}; conf/sources.yaml has {', '.join(sorted(known))}")
    rng = random.Random(seed)
    genres = train["source"].map(genre_of)
    documents = train[(train["label"] == 0) & genres.isin(settings["documents"]).to_numpy()]
    payloads = train.loc[(train["label"] == 2) & genres.isin(settings["payloads"]).to_numpy(), "text"]
    payloads = payloads[payloads.str.len() <= settings["max_payload_chars"]].tolist()
    rows = []
    for _, doc in documents.iterrows() if payloads else ():
        task, gap, passage = doc["text"].partition("\n\n")
        if not gap:
            task, passage = "", doc["text"]
        for _ in range(settings["per_document"]):
            payload = rng.choice(payloads)
            at = rng.choice([c for c in cuts(passage, window_chars or 300) if c > 0] or [len(passage)])
            before, after = passage[:at].rstrip(), passage[at:].lstrip()
            if window_chars:
                before, after = _around(before, payload, after, window_chars, rng)
                rows.append({**doc, "text": normalize_text(f"{before} {after}"), "label": 0})
                rows.append({**doc, "text": normalize_text(f"{before} {payload} {after}"), "label": 2})
            else:
                rows.append({**doc, "text": normalize_text(f"{task}{gap}{before} {payload} {after}"), "label": 2})
    copies = pd.DataFrame(rows, columns=train.columns).assign(source=INDIRECT_SOURCE)
    counts = {f"augment_indirect_c{c}": int((copies["label"] == c).sum()) for c in (0, 2)}
    return copies, counts


def augmented_frame(train: pd.DataFrame, kinds: list[str], seed: int,
                    window_chars: int | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """`train` augmented with each of `kinds` (evasion, indirect), shuffled, and the copies counted."""
    counts = {}
    if "indirect" in kinds:
        copies, counts = indirect_frame(train, seed, window_chars)
        train = pd.concat([train, copies], ignore_index=True).sample(frac=1.0, random_state=seed)
        train = train.reset_index(drop=True)
    if "evasion" in kinds:
        train, evasion_counts = augment_frame(train, seed, window_chars)
        counts.update(evasion_counts)
    return train, counts
