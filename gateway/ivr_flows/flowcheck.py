"""Checking one flow file (``flows/<id>.yaml``): its prompts, nodes and links between nodes.

:func:`check_flow` builds a :class:`gateway.ivr_flows.model.Flow` or records every problem on
the source; :func:`flow_links` checks, once every flow is read, that ``type: flow`` nodes name
a loaded flow. Called by :func:`gateway.ivr_flows.validate.config_from_files`.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.ivr_flows import yamlsrc
from gateway.ivr_flows.fields import ID, Reader, kind_of
from gateway.ivr_flows.model import (
    BroadcastNode,
    CalendarNode,
    CallbackOffer,
    EmergencyGuard,
    Flow,
    GotoFlowNode,
    HangupNode,
    MenuNode,
    MenuOption,
    PROGRESS_ROLES,
    PlayNode,
    ProgressNode,
    RecordNode,
    SayTicketNode,
    TransferNode,
)
from gateway.ivr_flows.model import DIGIT_TEXTS

_KEY = re.compile(r"^[0-9*#]$")
AFTER_HOURS = ("central", "hangup")
_LANG = re.compile(r"^[a-z]{2,3}$")
VOICES = ("cmn", "yue", "ko", "en")  # espeak-ng voices the prompts can be rendered in
# A prompt text may name a per-call value in braces ({date}: the day the citizen called, the
# follow-up flow); such a template is rendered per call (gateway.followup.ivr), not at apply.
# {date}: filled per call (the 回访's greeting, gateway.followup.ivr); {minutes} and {number}:
# the callback offer's, rendered at apply as one prompt per value (gateway.pbx.prompts.prompt_variants).
PER_CALL_FIELDS = ("date",)
PROMPT_FIELDS = PER_CALL_FIELDS + ("minutes", "number")
TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")


def is_template(text: str) -> bool:
    """Whether the text has a field filled per call (not rendered at apply)."""
    return any(name in PER_CALL_FIELDS for name in TEMPLATE_FIELD.findall(text or ""))


def check_flow(src: yamlsrc.Source, r: Reader) -> Flow | None:
    top = r.mapping(src.data, (), required=("id", "language", "start", "prompts", "nodes"),
                    optional=("description", "speech", "emergency"))
    if top is None:
        return None
    fid = r.text(top.get("id"), ("id",), pattern=ID, what="flow id")
    language = r.choice(top.get("language"), ("language",), VOICES)
    prompts = r.mapping(top.get("prompts"), ("prompts",), optional=tuple(top.get("prompts") or {})) or {}
    texts, voices = {}, {}
    for k, v in prompts.items():
        if isinstance(v, dict):  # {text: ..., language: ko}: a prompt in another voice
            if r.mapping(v, ("prompts", k), required=("text", "language")) is None:
                continue
            texts[k] = r.text(v.get("text"), ("prompts", k, "text"))
            voice = r.choice(v.get("language"), ("prompts", k, "language"), VOICES)
            if voice and voice != language:
                voices[k] = voice
        else:
            texts[k] = r.text(v, ("prompts", k))
        for name in TEMPLATE_FIELD.findall(texts.get(k) or ""):
            if name not in PROMPT_FIELDS:
                r.src.problem(("prompts", k), f"unknown field {{{name}}} in the text (known: "
                              + ", ".join(f"{{{f}}}" for f in PROMPT_FIELDS) + ")")
    speech = None
    if top.get("speech") is not None:
        speech = r.text(top.get("speech"), ("speech",), pattern=_LANG, what="speech language (e.g. zh, ko)")
    raw_nodes = top.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        src.problem(("nodes",), "expected a non-empty mapping of nodes")
        return None
    nodes = {}
    for nid, raw in raw_nodes.items():
        path = ("nodes", nid)
        if not ID.match(nid):
            src.problem(path, f"{nid!r} is not a valid node id")
        node = _node(nid, raw, path, r, texts)
        if node is not None:
            nodes[nid] = node
    start = r.text(top.get("start"), ("start",))
    if start and start not in raw_nodes:
        src.problem(("start",), f"unknown node {start!r}")
    for nid, node in nodes.items():
        for field_, target in _targets(node):
            if target not in raw_nodes:
                src.problem(("nodes", nid, *field_), f"unknown node {target!r}")
    for nid, node in nodes.items():
        if not isinstance(node, ProgressNode):
            continue
        if language and language != "cmn":  # the unit names and replies are spoken live in Mandarin
            src.problem(("nodes", nid, "type"), "a progress node speaks Mandarin live: the flow's language must be cmn")
        if node.agent in nodes and not isinstance(nodes[node.agent], TransferNode):
            src.problem(("nodes", nid, "agent"), f"{node.agent!r} is not a transfer node")
    guard = _guard(top.get("emergency"), r, texts, raw_nodes) if "emergency" in top else None
    if guard is not None and guard.key:
        for nid, node in nodes.items():
            if isinstance(node, MenuNode) and guard.key in node.options:
                src.problem(("nodes", nid, "options", guard.key),
                            f"key {guard.key!r} is the flow's emergency key (emergency.key)")
    for nid, node in nodes.items():
        if isinstance(node, SayTicketNode) and language and language not in DIGIT_TEXTS:
            src.problem(("nodes", nid, "type"),
                        f"say_ticket reads digits in {', '.join(sorted(DIGIT_TEXTS))} only, not {language!r}")
    if fid is None or start is None or language is None:
        return None
    return Flow(id=fid, language=language, start=start, prompts=texts, nodes=nodes, speech=speech,
                emergency=guard, prompt_languages=voices)


def _guard(raw: Any, r: Reader, texts: dict, raw_nodes: dict) -> EmergencyGuard | None:
    path = ("emergency",)
    if r.mapping(raw, path, required=("node",), optional=("key", "key_prompt")) is None:
        return None
    node = r.text(raw.get("node"), path + ("node",))
    if node is not None and node not in raw_nodes:
        r.src.problem(path + ("node",), f"unknown node {node!r}")
    key = None
    if raw.get("key") is not None:
        key = r.text(raw.get("key"), path + ("key",), pattern=_KEY, what="phone key (0-9, * or #)")
    key_prompt = _prompt(r, raw.get("key_prompt"), path + ("key_prompt",), texts, optional=True)
    if key_prompt and not key:
        r.src.problem(path + ("key_prompt",), "a key prompt needs emergency.key")
    return None if node is None else EmergencyGuard(node, key, key_prompt)


def _targets(node) -> list:
    if isinstance(node, (PlayNode, RecordNode, BroadcastNode, SayTicketNode)):
        return [(("next",), node.next)]
    if isinstance(node, MenuNode):
        out = [(("on_failure",), node.on_failure)]
        out += [(("options", key, "next"), opt.next) for key, opt in node.options.items()]
        return out
    if isinstance(node, CalendarNode):
        return [(("open",), node.open)] + [(("closed", k), v) for k, v in node.closed.items()]
    if isinstance(node, ProgressNode):
        return [(("agent",), node.agent)]
    return []


def flow_links(flows: dict, sources: dict) -> list:
    """Every ``type: flow`` node must name a loaded flow (checked once all flows are read)."""
    out = []
    for fid, flow in flows.items():
        src = sources[fid]
        for nid, node in flow.nodes.items():
            if isinstance(node, GotoFlowNode) and node.flow not in flows:
                out.append(yamlsrc.ConfigProblem(src.file, src.line_of(("nodes", nid, "flow")),
                                                 yamlsrc.field_name(("nodes", nid, "flow")), f"unknown flow {node.flow!r}"))
    return out


def _prompt(r: Reader, value, path, texts: dict, *, optional=False) -> str | None:
    if value is None and optional:
        return None
    text = r.text(value, path)
    if text is not None and text not in texts:
        r.src.problem(path, f"unknown prompt {text!r}")
    return text


def _node(nid: str, raw: Any, path: tuple, r: Reader, texts: dict):
    if not isinstance(raw, dict):
        r.src.problem(path, f"expected a mapping, got {kind_of(raw)}")
        return None
    kind = r.choice(raw.get("type"), path + ("type",),
                    ("play", "menu", "record", "transfer", "calendar", "hangup", "broadcast", "flow", "say_ticket", "progress"))
    if kind is None:
        return None
    fields = {
        "play": (("type", "prompt", "next"), ("set", "interruptible")),
        "menu": (("type", "prompt", "options", "on_failure"),
                 ("timeout", "retries", "invalid_prompt", "no_input_prompt", "default", "speech")),
        "record": (("type", "prompt", "next"), ("beep_prompt", "max_seconds", "silence_seconds", "speech",
                                                "no_input_seconds", "no_input_prompt")),
        "transfer": (("type", "default_queue"), ("queue_from", "prompt", "callback")),
        "calendar": (("type", "open", "closed"), ()),
        "hangup": (("type",), ("prompt",)),
        "broadcast": (("type", "next"), ()),
        "flow": (("type", "flow"), ()),
        "say_ticket": (("type", "prompt", "next"), ("repeat_prompt", "repeat_key", "repeats", "timeout")),
        "progress": (("type", "agent", "prompts"), ("attempts", "timeout")),
    }[kind]
    if r.mapping(raw, path, required=fields[0], optional=fields[1]) is None:
        return None
    if any(k not in raw for k in fields[0]):
        return None
    p = lambda key, optional=False: _prompt(r, raw.get(key), path + (key,), texts, optional=optional)  # noqa: E731
    if kind == "play":
        return PlayNode(nid, p("prompt"), str(raw["next"]), _sets(r, raw.get("set"), path + ("set",)),
                        interruptible=_flag(r, raw.get("interruptible", True), path + ("interruptible",)))
    if kind == "record":
        return RecordNode(
            nid, p("prompt"), str(raw["next"]), p("beep_prompt", True),
            r.number(raw.get("max_seconds", 60), path + ("max_seconds",), low=1, high=600) or 60,
            r.number(raw.get("silence_seconds", 3), path + ("silence_seconds",), low=0.5, high=30) or 3,
            _flag(r, raw.get("speech", False), path + ("speech",)),
            r.number(raw.get("no_input_seconds", 6), path + ("no_input_seconds",), low=1, high=60) or 6,
            p("no_input_prompt", True),
        )
    if kind == "flow":
        return GotoFlowNode(nid, r.text(raw["flow"], path + ("flow",), pattern=ID, what="flow id") or "")
    if kind == "transfer":
        qf = raw.get("queue_from", [])
        if not isinstance(qf, list) or not all(isinstance(x, str) for x in qf):
            r.src.problem(path + ("queue_from",), "expected a list of variable names")
            qf = []
        offer = _callback_offer(r, raw["callback"], path + ("callback",), texts) if "callback" in raw else None
        return TransferNode(nid, str(raw["default_queue"]), tuple(qf), p("prompt", True), offer)
    if kind == "calendar":
        closed = r.mapping(raw["closed"], path + ("closed",), required=AFTER_HOURS) or {}
        return CalendarNode(nid, str(raw["open"]), {k: str(v) for k, v in closed.items() if k in AFTER_HOURS})
    if kind == "hangup":
        return HangupNode(nid, p("prompt", True))
    if kind == "broadcast":
        return BroadcastNode(nid, str(raw["next"]))
    if kind == "say_ticket":
        return _say_ticket(nid, raw, path, r, p)
    if kind == "progress":
        return _progress(nid, raw, path, r, texts)
    options = {}
    raw_opts = raw["options"]
    if not isinstance(raw_opts, dict) or not raw_opts:
        r.src.problem(path + ("options",), "expected a non-empty mapping of keys")
        raw_opts = {}
    for key, opt in raw_opts.items():
        opath = path + ("options", key)
        if not _KEY.match(str(key)):
            r.src.problem(opath, f"{key!r} is not a phone key (0-9, * or #)")
            continue
        if r.mapping(opt, opath, required=("label", "next"), optional=("set", "say")) is None or "next" not in opt:
            continue
        say = opt.get("say", [])
        if not isinstance(say, list) or not all(isinstance(w, str) and w.strip() and len(w) <= 40 for w in say):
            r.src.problem(opath + ("say",), "expected a list of words a caller may say (non-empty, short)")
            say = []
        label = r.text(opt.get("label"), opath + ("label",), one_line=True) or ""
        options[str(key)] = MenuOption(str(key), label, str(opt["next"]),
                                       _sets(r, opt.get("set"), opath + ("set",)),
                                       tuple(w.strip() for w in say))
    default = raw.get("default")
    if default is not None and str(default) not in options:
        r.src.problem(path + ("default",), f"{default!r} is not one of the menu's keys")
    retries = r.number(raw.get("retries", 2), path + ("retries",), low=0, high=5)
    return MenuNode(
        nid, p("prompt"), options, str(raw["on_failure"]),
        r.number(raw.get("timeout", 5), path + ("timeout",), low=1, high=60) or 5,
        int(retries if retries is not None else 2), p("invalid_prompt", True), p("no_input_prompt", True),
        None if default is None else str(default),
        _flag(r, raw.get("speech", False), path + ("speech",)),
    )


def _say_ticket(nid: str, raw: dict, path: tuple, r: Reader, p) -> SayTicketNode:
    key = r.text(str(raw.get("repeat_key", "*")), path + ("repeat_key",), pattern=_KEY,
                 what="phone key (0-9, * or #)") or "*"
    repeats = r.number(raw.get("repeats", 2), path + ("repeats",), low=0, high=5)
    return SayTicketNode(
        nid, p("prompt"), str(raw["next"]), p("repeat_prompt", True), key,
        int(repeats if repeats is not None else 2),
        r.number(raw.get("timeout", 3), path + ("timeout",), low=1, high=15) or 3,
    )
# Placeholders a callback prompt must hold (and no other prompt of the offer may).
CALLBACK_PLACEHOLDERS = {"offer": "{minutes}", "confirm": "{number}"}


def _callback_offer(r: Reader, raw: Any, path: tuple, texts: dict) -> CallbackOffer | None:
    """``callback: {over_seconds: 60, timeout: 5, offer: <prompt>, ...}`` on a transfer node."""
    if raw is True or raw == {}:
        raw = {}
    names = tuple(CallbackOffer().prompt_ids())
    if r.mapping(raw, path, optional=("over_seconds", "timeout") + names) is None:
        return None
    over = None
    if raw.get("over_seconds") is not None:
        over = r.number(raw.get("over_seconds"), path + ("over_seconds",), low=0, high=3600)
    timeout = r.number(raw.get("timeout", 5), path + ("timeout",), low=1, high=30) or 5
    chosen = {}
    for name in names:
        value = raw.get(name, getattr(CallbackOffer, name))
        pid = _prompt(r, value, path + (name,), texts)  # "unknown prompt" (a default id too) if absent
        if pid is None or pid not in texts:
            continue
        chosen[name] = pid
        holder = CALLBACK_PLACEHOLDERS.get(name)
        text = texts[pid]
        if holder and holder not in text:
            r.src.problem(path + (name,), f"prompt {pid!r} must contain {holder} (where it is said)")
        elif not holder and "{" in text:
            r.src.problem(path + (name,), f"prompt {pid!r} may not contain a {{placeholder}}")
    if len(chosen) != len(names):
        return None
    return CallbackOffer(over_seconds=over, timeout=timeout, **chosen)


def _progress(nid: str, raw: dict, path: tuple, r: Reader, texts: dict) -> ProgressNode:
    """A ``type: progress`` node: every role in PROGRESS_ROLES names a prompt of the flow."""
    roles = r.mapping(raw["prompts"], path + ("prompts",), required=PROGRESS_ROLES) or {}
    prompts = {}
    for role in PROGRESS_ROLES:
        if role in roles:
            prompts[role] = _prompt(r, roles[role], path + ("prompts", role), texts) or ""
    attempts = r.number(raw.get("attempts", 3), path + ("attempts",), low=1, high=5)
    return ProgressNode(nid, str(raw["agent"]), prompts, int(attempts if attempts is not None else 3),
                        r.number(raw.get("timeout", 8), path + ("timeout",), low=2, high=30) or 8)


def _flag(r: Reader, value: Any, path: tuple) -> bool:
    if not isinstance(value, bool):
        r.src.problem(path, f"expected true or false, got {kind_of(value)}")
        return False
    return value


def _sets(r: Reader, raw, path) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        r.src.problem(path, "expected a mapping of variable: value")
        return {}
    out = {}
    for k, v in raw.items():
        if not re.match(r"^[a-z_][a-z0-9_]*$", k):
            r.src.problem(path + (k,), "not a valid variable name")
        elif v is not None and not isinstance(v, (str, int, bool)):
            r.src.problem(path + (k,), "expected text, a number or true/false")
        else:
            out[k] = v
    return out
