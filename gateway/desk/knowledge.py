"""The hotline knowledge base (热线知识库): answers to common consultations.

``config/knowledge/*.yaml`` each hold ``entries``: id, title, keywords, answer,
source and the date the answer was last checked (``updated``). Loading is
validated like the catalogue (every problem with file, line and field; ids
unique across files).

Search is simple, deterministic and explainable (Chinese has no spaces, and
there is no tokeniser): on normalised text,

* every entry keyword found in the text scores 1;
* plus twice the share of the title's character bigrams found in the text
  (Latin and digit runs count whole, e.g. "12345"; bigrams such as "请问" or
  "怎么" that say nothing about the topic are ignored).

An entry needs a score of 1 (one keyword, or half its title) to be suggested.
Ties go to the entry id, so the same text always gives the same answers. Each
hit says what matched: the keywords first, then the title bigrams.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from gateway.desk.catalogue import find_all, normalize
from gateway.desk.catalogue_load import as_date, parse_source, read_source, word_list
from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import Reader

MIN_SCORE = 1.0
_ID = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_STOP_BIGRAMS = frozenset({"请问", "怎么", "一下", "什么", "可以", "我们", "你们", "这个", "那个", "如何", "需要",
                           "我想", "想问", "问一", "问问", "是不", "不是", "时候"})
_CJK = re.compile(r"[\u4e00-\u9fff]")
_WIDE = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
_FOLD = re.compile(f"(?<=[{_WIDE}])\\s+(?=[{_WIDE}])")
_RUNS = re.compile(r"[\u4e00-\u9fff]+|[a-z0-9]+")


def bigrams(text: str) -> set[str]:
    """Character bigrams of the Chinese in normalised ``text``, and its Latin/digit runs whole ("12345").

    Punctuation splits runs; the stop bigrams are left out.
    """
    out = set()
    for run in _RUNS.findall(normalize(text)):
        if _CJK.match(run):
            out |= {run[i:i + 2] for i in range(len(run) - 1)}
        elif len(run) > 1:
            out.add(run)
    return out - _STOP_BIGRAMS


@dataclass(frozen=True)
class KnowledgeEntry:
    id: str
    title: str
    keywords: tuple[str, ...]
    answer: str
    source: str
    updated: date
    file: str = ""


@dataclass(frozen=True)
class KnowledgeHit:
    entry: KnowledgeEntry
    score: float
    matched: tuple[str, ...]  # keywords found, then title bigrams found


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[KnowledgeEntry, ...]

    def get(self, entry_id: str) -> KnowledgeEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def search(self, text: str, k: int = 3) -> list[KnowledgeHit]:
        """The ``k`` best entries for ``text``, best first; none below :data:`MIN_SCORE`."""
        norm = normalize(text)
        if not norm:
            return []
        grams = bigrams(norm)
        hits = []
        for entry in self.entries:
            words = find_all(norm, entry.keywords)
            title = bigrams(entry.title)
            shared = sorted(title & grams, key=lambda g: normalize(entry.title).find(g))
            score = round(len(words) + (2 * len(shared) / len(title) if title else 0.0), 3)
            if score >= MIN_SCORE:
                extra = [g for g in shared if not any(g in normalize(w) for w in words)]
                hits.append(KnowledgeHit(entry, score, tuple(words + extra)))
        hits.sort(key=lambda h: (-h.score, h.entry.id))
        return hits[:k]


def _unfold(text: str | None) -> str | None:
    """YAML folds lines with a space; between Chinese characters and punctuation, drop it."""
    return text and _FOLD.sub("", text)


def _entries(src: yamlsrc.Source) -> list[tuple[int, KnowledgeEntry]]:
    r = Reader(src)
    top = r.mapping(src.data, (), required=("entries",), optional=("topic",))
    if top is None:
        return []
    raw = top.get("entries")
    if not isinstance(raw, list) or not raw:
        src.problem(("entries",), "expected a non-empty list of entries")
        return []
    out = []
    for i, item in enumerate(raw):
        path = ("entries", i)
        m = r.mapping(item, path, required=("id", "title", "keywords", "answer", "source", "updated"))
        if m is None:
            continue
        eid = r.text(m.get("id"), path + ("id",), pattern=_ID, what="entry id (lowercase letters, digits, -)")
        title = r.text(m.get("title"), path + ("title",))
        keywords = word_list(r, m.get("keywords"), path + ("keywords",))
        answer = _unfold(r.text(m.get("answer"), path + ("answer",)))
        source = r.text(m.get("source"), path + ("source",))
        updated = as_date(m.get("updated"))
        if "updated" in m and updated is None:
            src.problem(path + ("updated",), f"{m.get('updated')!r} is not a date YYYY-MM-DD")
        if eid and title and keywords and answer and source and updated:
            out.append((i, KnowledgeEntry(eid, title, keywords, answer, source, updated, src.file)))
    return out


def load_knowledge(directory: Path | str) -> KnowledgeBase:
    """Load every ``*.yaml`` of ``directory``; raise ConfigError listing every problem of every file."""
    directory = Path(directory)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError([yamlsrc.ConfigProblem(str(directory), None, "", "no knowledge files (*.yaml)")])
    return _build([read_source(path) for path in files])


def parse_knowledge(texts: dict[str, str]) -> KnowledgeBase:
    """Validate knowledge files given as texts (file name -> YAML); same errors as the loader."""
    return _build([parse_source(text, name) for name, text in sorted(texts.items())])


def _build(sources: list[yamlsrc.Source]) -> KnowledgeBase:
    problems, entries, seen = [], [], {}
    for src in sources:
        found = _entries(src) if not src.problems else []
        for i, entry in found:
            if entry.id in seen:
                src.problem(("entries", i, "id"), f"duplicate entry id {entry.id!r} (also in {seen[entry.id]})")
                continue
            seen[entry.id] = entry.file
            entries.append(entry)
        problems += src.problems
    if problems:
        raise ConfigError(problems)
    return KnowledgeBase(tuple(entries))
