"""Chinese for the configuration's problems: one catalogue of message templates.

Every :class:`gateway.ivr_flows.yamlsrc.ConfigProblem` carries its English
``message`` (as the checks write it) and ``message_zh``, made here from the
English by :func:`translate`: the message is matched against the English
templates below (``{name}`` stands for a value), the first that matches whole
wins, and its Chinese template is filled with the same values. A value named
``kind``, ``what``, ``mode`` or ``more`` is itself translated (``a mapping`` -> ``映射``);
any other value (a field's text, a number, a file name) is kept as it is.

So the checks keep writing plain English f-strings and the translations live in
one place. A message no template matches gets :data:`UNTRANSLATED` before its
English; ``tests/unit/test_config_messages_zh.py`` runs the checks over a corpus
of broken configurations and fails on any such message, and on any template
the corpus never produces.
"""

from __future__ import annotations

import re

UNTRANSLATED = "配置有误（暂无中文说明）："

# Values that are translated too: what kind of YAML value was found (fields.kind_of, asr.config._kind)...
KINDS = {
    "a mapping": "映射（键: 值）", "a list": "列表", "nothing": "空值", "str": "文字", "int": "整数",
    "float": "小数", "bool": "true/false", "date": "日期", "datetime": "日期时间",
}
# ...what a text should have been (Reader.text(what=...), word_list(what=...)) or what was not found (Reader.ref)...
WHATS = {
    "agent id (2-8 digits)": "坐席 id（2-8 位数字）",
    "broadcast id (lowercase letters, digits, -)": "广播 id（小写字母、数字、-）",
    "entry id (lowercase letters, digits, -)": "条目 id（小写字母、数字、-）",
    "matter id (lowercase letters, digits, -)": "事项 id（小写字母、数字、-）",
    "place id (lowercase letters, digits, -)": "地点 id（小写字母、数字、-）",
    "unit id (lowercase letters, digits, -)": "单位 id（小写字母、数字、-）",
    "month-day (MM-DD, quoted)": "月-日（MM-DD，加引号）",
    "phone key (0-9, * or #)": "电话按键（0-9、* 或 #）",
    "phone number (3-20 digits)": "电话号码（3-20 位数字）",
    "speech language (e.g. zh, ko)": "语音识别语言（如 zh、ko）",
    "time zone (e.g. Asia/Shanghai)": "时区（如 Asia/Shanghai）",
    "time of day (HH:MM, quoted)": "时刻（HH:MM，加引号）",
    "archive directory (a relative path without ..)": "归档目录（相对路径，不含 ..）",
    "flow id": "流程 id", "keywords": "关键词", "aliases": "别名", "landmarks": "地标", "words": "词语",
    "agent": "坐席", "queue": "队列", "schedule": "作息时间", "flow": "流程", "unit": "承办单位", "value": "值",
}
# ...how a matter is dispatched...
MODES = {"direct": "直派（direct）", "dual": "双派（dual）"}
# ...and the "did you mean" or "allowed" tail of an unknown key, engine or unit.
_MORE = (
    (re.compile(r" \(did you mean (?P<hint>.+)\?\)", re.S), "（是否应为 {hint}？）"),
    (re.compile(r" \(allowed: (?P<allowed>.+)\)", re.S), "（可用：{allowed}）"),
)

# (English template, Chinese template): most specific first where two could match.
TEMPLATES: tuple[tuple[str, str], ...] = (
    # -- reading YAML (gateway.ivr_flows.yamlsrc) ---------------------------------------------
    ("anchors/aliases (&x, *x) are not allowed / 不允许使用锚点和别名（&x、*x），请写出每个值",
     "不允许使用锚点和别名（&x、*x），请写出每个值"),
    ("the file is larger than {kib} KiB ({chars} characters) / 文件过大", "文件过大：超过 {kib} KiB（{chars} 个字符）"),
    ("nested deeper than {levels} levels / 嵌套层级过深", "嵌套层级过深：超过 {levels} 层"),
    ("more than {count} values in one file / 值的数量超过上限", "值的数量超过上限：一个文件最多 {count} 个值"),
    ("not valid YAML: expected a single document in the stream", "不是有效的 YAML：一个文件只能有一个文档"),
    ("not valid YAML: {reason}", "不是有效的 YAML：{reason}"),
    ("the file is empty", "文件为空"),
    ("file not found", "找不到文件"),
    ("cannot read: {reason}", "无法读取：{reason}"),
    ("not allowed: {reason}", "不允许：{reason}"),
    ("the tag {tag} is not allowed", "不允许使用标签 {tag}"),
    ("keys must be plain strings", "键必须是普通文字"),
    ("duplicate key", "键重复"),
    ("{key} is not a valid key: {reason}", "{key} 不是有效的键：{reason}"),
    ("{value} is not a valid value: {reason}", "{value} 不是有效的值：{reason}"),
    ("a value is not valid ({reason}); quote it if it is text", "有一个值无效（{reason}）；如果是文字，请加引号"),
    ("invalid", "无效"),
    # -- fields of any file (gateway.ivr_flows.fields) -----------------------------------------
    ("expected a mapping, got {kind}", "应为映射（键: 值），实际为{kind}"),
    ("expected text, got {kind}", "应为文字，实际为{kind}"),
    ("expected a number, got {kind}", "应为数字，实际为{kind}"),
    ("expected a whole number, got {kind}", "应为整数，实际为{kind}"),
    ("expected true or false, got {kind}", "应为 true 或 false，实际为{kind}"),
    ("expected true or false", "应为 true 或 false"),
    ("must not be empty", "不能为空"),
    ("contains control characters (such as NUL) / 含有控制字符", "含有控制字符（如 NUL）"),
    ("must be a single line / 必须为单行文字", "必须为单行文字"),
    ("unknown key{more}", "未知的键{more}"),
    ("missing required key {key}", "缺少必填的键 {key}"),
    ("{value} is not a valid {what}", "{value} 不是有效的{what}"),
    ("{value} is out of range {low}..{high}", "{value} 超出范围 {low}..{high}"),
    ("{key} is not one of the menu's keys", "{key} 不是本菜单的按键"),
    ("{value} is not one of {choices}; did you mean {hint}?", "{value} 不是可选值（{choices}）之一；是否应为 {hint}？"),
    ("{value} is not one of {choices}", "{value} 不是可选值（{choices}）之一"),
    ("{value} is not a known time zone (e.g. Asia/Shanghai)", "{value} 不是已知的时区（如 Asia/Shanghai）"),
    # -- flows (gateway.ivr_flows.flowcheck) ------------------------------------------------------
    ("expected a non-empty mapping of nodes", "应为非空的节点映射"),
    ("unknown node {node}", "未知的节点 {node}"),
    ("unknown prompt {prompt}", "未知的提示音 {prompt}"),
    ("prompt {prompt} must contain {holder} (where it is said)", "提示音 {prompt} 必须包含 {holder}（朗读它的位置）"),
    ("prompt {prompt} may not contain a {{placeholder}}", "提示音 {prompt} 不能包含 {{占位符}}"),
    ("unknown field {field} in the text (known: {known})", "文字中有未知的字段 {field}（可用：{known}）"),
    ("{node} is not a valid node id", "{node} 不是有效的节点 id"),
    ("a key prompt needs emergency.key", "按键提示音需要设置 emergency.key"),
    ("key {key} is the flow's emergency key (emergency.key)", "按键 {key} 已是本流程的紧急键（emergency.key）"),
    ("a progress node speaks Mandarin live: the flow's language must be cmn",
     "查询进度节点以普通话实时播报：流程的语言须为 cmn"),
    ("{node} is not a transfer node", "{node} 不是转接（transfer）节点"),
    ("expected a non-empty mapping of keys", "应为非空的按键映射"),
    ("{key} is not a phone key (0-9, * or #)", "{key} 不是电话按键（0-9、* 或 #）"),
    ("expected a list of words a caller may say (non-empty, short)", "应为来电人可能说的词语列表（非空、简短）"),
    ("expected a list of variable names", "应为变量名列表"),
    ("expected a mapping of variable: value", "应为“变量: 值”的映射"),
    ("not a valid variable name", "不是有效的变量名"),
    ("expected text, a number or true/false", "应为文字、数字或 true/false"),
    ("duplicate flow {flow}", "流程重复：{flow}"),
    ("no flow files (*.yaml)", "没有流程文件（*.yaml）"),
    # -- hotlines.yaml (gateway.ivr_flows.validate) ----------------------------------------------
    ("{year} is not a year", "{year} 不是年份"),
    ("expected a list of dates YYYY-MM-DD", "应为日期列表（YYYY-MM-DD）"),
    ("{day} is not a date of {year} (YYYY-MM-DD)", "{day} 不是 {year} 年的日期（YYYY-MM-DD）"),
    ("dates both holiday and working day: {dates}", "以下日期同时是节假日和调休工作日：{dates}"),
    ("expected a list like ['08:30-12:00']", "应为时间段列表，如 ['08:30-12:00']"),
    ("{range} is not a range HH:MM-HH:MM (quote it)", "{range} 不是时间段 HH:MM-HH:MM（请加引号）"),
    ("{range} ends before it starts", "{range} 的结束时间早于开始时间"),
    ("ends before it starts", "结束时间早于开始时间"),
    ("these hours never open", "该作息时间从不开放"),
    ("duplicate agent {agent}", "坐席重复：{agent}"),
    ("{name} is not a valid queue name (q-<lowercase letters, digits, ->)", "{name} 不是有效的队列名（q-<小写字母、数字、->）"),
    ("expected a list of agent ids", "应为坐席 id 列表"),
    ("expected a non-empty list of lines", "应为非空的热线列表"),
    ("duplicate number {number}", "号码重复：{number}"),
    ("exactly one line must have mode 'primary' (found {count})", "必须恰好有一条热线的 mode 为 'primary'（现有 {count} 条）"),
    ("flow {flow} node {node} needs queue {queue}", "流程 {flow} 的节点 {node} 需要队列 {queue}"),
    ("flow {flow} option {option} needs queue {queue}", "流程 {flow} 的选项 {option} 需要队列 {queue}"),
    ("{value} is not a date and time like 2027-01-01T08:00:00+08:00", "{value} 不是日期时间，格式如 2027-01-01T08:00:00+08:00"),
    ("expected a list of broadcasts", "应为广播列表"),
    ("duplicate broadcast {broadcast}", "广播重复：{broadcast}"),
    ("expected a list of line numbers (or [all])", "应为热线号码列表（或 [all]）"),
    ("unknown line {number}", "未知的热线 {number}"),
    ("{number} is an emergency number; 12345 takes non-emergency requests only",
     "{number} 是紧急电话号码；12345 只受理非紧急诉求"),
    ("the primary line answers 7x24", "主热线必须 7x24 小时接听"),
    # -- speech.yaml (gateway.asr.config) -----------------------------------------------------
    ("{code} is not a language code (two or three lowercase letters, e.g. zh, ko, yue)",
     "{code} 不是语言代码（两到三个小写字母，如 zh、ko、yue）"),
    ("unknown engine {engine}{more}", "未知的识别引擎 {engine}{more}"),
    ("sha256 is for a Whisper model given by path (the built-in whisper-base is always checked against its "
     "pinned hashes)", "sha256 只用于以 path 指定的 Whisper 模型（内置的 whisper-base 总会按固定的哈希值校验）"),
    ("give exactly one of 'path' (a model directory) or 'package' (an installed model package)",
     "'path'（模型目录）和 'package'（已安装的模型包）只能给出其中一个"),
    ("missing 'path' (a model directory) or 'package' (an installed model package)",
     "缺少 'path'（模型目录）或 'package'（已安装的模型包）"),
    ("{package} is not a package name", "{package} 不是包名"),
    ("the Whisper engine's built-in model is {model}; give a CTranslate2 model directory as 'path' for any other",
     "Whisper 引擎的内置模型是 {model}；其他模型请用 'path' 给出 CTranslate2 模型目录"),
    ("expected a mapping of file name -> sha256, got {kind}", "应为“文件名 -> sha256”的映射，实际为{kind}"),
    ("{name} is not a file name in the model directory", "{name} 不是模型目录中的文件名"),
    ("expected 64 hexadecimal digits (sha256sum of the file)", "应为 64 位十六进制数字（文件的 sha256sum）"),
    ("expected a non-empty list of keywords, got {kind}", "应为非空的关键词列表，实际为{kind}"),
    ("a keyword must be at most {count} characters", "关键词最多 {count} 个字符"),
    ("duplicate keyword {word}", "关键词重复：{word}"),
    ("expected a non-empty mapping of language -> model, got {kind}", "应为非空的“语言 -> 模型”映射，实际为{kind}"),
    # -- the desk's catalogue and knowledge base (gateway.desk) -----------------------------------
    ("expected a non-empty list of {what}", "应为非空的{what}列表"),
    ("duplicate word {word}", "词语重复：{word}"),
    ("expected a non-empty list of streets and townships", "应为非空的街道和乡镇列表"),
    ("expected a list of units (unit ids, or street / district / police)", "应为承办单位列表（单位 id，或 street / district / police）"),
    ("unknown unit {unit}{more}", "未知的承办单位 {unit}{more}"),
    ("{unit} is listed twice", "{unit} 列出了两次"),
    ("{mode} dispatch goes to {wanted} unit(s), not {count}", "{mode}应派给 {wanted} 个单位，而不是 {count} 个"),
    ("{unit} is reserved (matters use it for the request's place)", "{unit} 是保留名（事项用它表示诉求所在地）"),
    ("duplicate id {unit} (also at line {line})", "id 重复：{unit}（另见第 {line} 行）"),
    ("expected a non-empty list of units", "应为非空的承办单位列表"),
    ("expected a non-empty list of districts", "应为非空的区列表"),
    ("{unit} is not a police unit", "{unit} 不是公安单位"),
    ("expected a non-empty list of matters", "应为非空的事项列表"),
    ("duplicate matter id {matter}", "事项 id 重复：{matter}"),
    ("unknown time zone {zone}", "未知的时区 {zone}"),
    ("the name {word} is used by {first} and {second}", "名称 {word} 同时被 {first} 和 {second} 使用"),
    ("expected a non-empty list of entries", "应为非空的条目列表"),
    ("{value} is not a date YYYY-MM-DD", "{value} 不是日期 YYYY-MM-DD"),
    ("no knowledge files (*.yaml)", "没有知识库文件（*.yaml）"),
    ("duplicate entry id {entry} (also in {file})", "条目 id 重复：{entry}（另见 {file}）"),
    # -- deadlines.yaml and unit_hooks.yaml (gateway.units) ---------------------------------------
    ("give either hours or working_days", "请给出 hours（小时）或 working_days（工作日）之一"),
    ("expected a whole number of working days", "工作日数应为整数"),
    ("{value} is not an http(s) URL", "{value} 不是 http(s) 网址"),
    ("the secret must be at least 16 printable characters", "密钥至少需要 16 个可打印字符"),
    # -- last, as it would take the more specific ones above -----------------------------------
    ("unknown {what} {value}", "未知的{what} {value}"),
)


def _alternatives(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_PATTERNS = {
    "kind": _alternatives(KINDS) + r"|[A-Za-z_][A-Za-z0-9_]*",  # a type name not listed stays as it is
    "what": _alternatives(WHATS),
    "more": r"(?: \((?:did you mean .+\?|allowed: .+)\))?",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _compile(english: str) -> re.Pattern:
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(english):
        out.append(re.escape(english[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>{_PATTERNS.get(m.group(1), '.+?')})")
        pos = m.end()
    out.append(re.escape(english[pos:]))
    return re.compile("".join(out), re.S)


_COMPILED = tuple((_compile(en), zh, en) for en, zh in TEMPLATES)


def _more(tail: str) -> str:
    for pattern, zh in _MORE:
        m = pattern.fullmatch(tail)
        if m:
            return zh.format(**m.groupdict())
    return tail


def _value(name: str, text: str) -> str:
    if name == "kind":
        return KINDS.get(text, text)
    if name == "what":
        return WHATS.get(text, text)
    if name == "more":
        return _more(text)
    if name == "mode":
        return MODES.get(text, text)
    return text


def match(message: str) -> str | None:
    """The English template ``message`` was made from, or None if none of :data:`TEMPLATES` fits."""
    for pattern, _zh, english in _COMPILED:
        if pattern.fullmatch(message):
            return english
    return None


def translate(message: str) -> str | None:
    """The Chinese of an English problem message, or None if no template matches it."""
    for pattern, zh, _english in _COMPILED:
        m = pattern.fullmatch(message)
        if m:
            return zh.format(**{name: _value(name, text) for name, text in m.groupdict().items()})
    return None


def message_zh(message: str) -> str:
    """The Chinese of ``message``; an unknown message is marked :data:`UNTRANSLATED` and kept in English."""
    return translate(message) or UNTRANSLATED + message
