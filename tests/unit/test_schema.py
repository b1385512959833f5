"""The schema layer (gateway.web.schema): every problem of a body at once, each in English and
Chinese; hostile bodies get a clear 4xx, never a 500; the OpenAPI document is generated from the
same models and covers every route that takes a body."""

from __future__ import annotations


import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.desk.schemas import SubmitBody
from gateway.desk.service import DeskService
from gateway.errors import GatewayError, NotFound
from gateway.hotlines import changes
from gateway.hotlines.openapi import BODY_MODELS, openapi_document
from gateway.hotlines.service import HotlineAdmin
from gateway.ivr_flows.validate import read_files
from gateway.ticketing.store import TicketStore
from gateway.auth.users import UserStore
from gateway.web.problems import ERROR_ZH, error_body, split_bilingual
from gateway.web.schema import MESSAGES, UNION_TAGS, RequestInvalid, validate
from tests.unit.webapp import build_app, with_admin, with_desk
from tests.unit.test_config_validation import CONFIG

NOW = datetime(2027, 2, 20, 10, 0, tzinfo=timezone.utc)
GATEWAY_DIR = Path(__file__).resolve().parents[2] / "gateway"
CJK = re.compile(r"[\u4e00-\u9fff]")
NO_BODY = {("POST", "/api/logout"), ("POST", "/metrics")}  # unsafe methods that read no JSON body


@pytest.fixture()
async def client(tmp_path, database_url):
    url = database_url  # migrated: SQLite and PostgreSQL (tests/dbfixtures.py)
    store = await TicketStore.open(url)
    applied = []

    async def applier(config, old):
        applied.append(config.version)

    admin = HotlineAdmin(store=store, clock=lambda: NOW, applier=applier, initial_files=lambda: read_files(CONFIG))
    await admin.bootstrap()

    async def health():
        return {"status": "ok"}

    users = UserStore(store)
    token, _csrf = await users.create_session(await users.create_user("adm", "admin-pw-12345", "admin"))
    await store.start_call(uniqueid="u-1", channel="Local/x;1", caller_number="13800138000", dialled_number="12315",
                           line_number="12315", line_name="消费者投诉举报热线", merge_mode="dual_number",
                           department="市市场监督管理局", flow_version="v1", started_at=NOW)
    ticket_id = await store.ensure_ticket("u-1", category="投诉", channel_kind=None, confidential=False,
                                          handled_by=None, queue="q-12315", department="市市场监督管理局")
    app = with_admin(build_app(store=store, health=health, users=users), admin)
    desk = DeskService(store=store, users=users, recordings_dir=tmp_path, suggester=None, clock=lambda: NOW)
    with_desk(app, desk)
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {token}"}) as c:
        c.app_, c.applied, c.store, c.ticket_id = app, applied, store, ticket_id
        yield c
    await store.close()


async def _send(client, method: str, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.request(method, path, data=data, headers={"Content-Type": "application/json"})
    return resp.status, await resp.json()


def _assert_bilingual(answer: dict) -> list[dict]:
    assert answer["error"] and answer["message"] and CJK.search(answer["message_zh"]), answer
    problems = answer["details"].get("problems", [])
    for p in problems:
        assert set(p) >= {"path", "field", "message", "message_zh"}, p
        assert p["message"] and CJK.search(p["message_zh"]) and not CJK.search(p["message"].split(":")[0]), p
    return problems


# -- every problem at once, in English and Chinese -----------------------------------------------


async def test_given_a_change_with_three_mistakes_when_submitted_then_three_problems_each_in_en_and_zh(client):
    status, answer = await _send(client, "PATCH", "/api/admin/lines/12315",
                                 {"fields": {"greeting": "新问候"}, "effective_at": "2027-03-01T08:00", "commnet": "x"})
    assert status == 400 and answer["error"] == "bad-request", answer
    problems = _assert_bilingual(answer)
    assert [(p["path"], p["field"]) for p in problems] == [
        ("comment", "comment"), ("effective_at", "effective_at"), ("commnet", "commnet")]
    assert [p["message_zh"] for p in problems] == ["必填", "需要带时区偏移（如 +08:00）", "未知字段（此处不允许）"]
    assert "3 problem(s)" in answer["message"] and "请求有 3 处问题" in answer["message_zh"]
    assert client.applied == []


async def test_given_a_decision_with_three_mistakes_when_submitted_then_three_problems_with_paths(client):
    body = {"version_id": 1, "category": "闲聊", "summary": "噪音", "dispatch_mode": "direct",
            "units": [{"name": "三里屯街道"}, {"name": "  "}], "urgency": "now"}
    status, answer = await _send(client, "POST", f"/api/desk/tickets/{client.ticket_id}/submit", body)
    assert status == 400, answer
    problems = _assert_bilingual(answer)
    assert [p["path"] for p in problems] == ["category", "urgency", "units[1].name"]
    assert problems[2]["field"] == "name" and answer["details"]["field"] == "category"
    assert (await client.store.get_ticket(client.ticket_id))["status"] == "draft"


def test_given_a_dry_run_with_a_wrong_operation_when_validated_then_the_path_names_the_op_not_the_tag():
    with pytest.raises(RequestInvalid) as caught:
        validate({"number": "12345", "change": {"op": "retire_line", "number": "١٢٣٤٥", "anouncement": "x"}},
                 BODY_MODELS[("POST", "/api/admin/dry-run")])
    assert [p["path"] for p in caught.value.problems] == ["change.number", "change.anouncement"]
    with pytest.raises(RequestInvalid) as caught:
        validate({"number": "12345", "change": {"op": "replace_files", "files": {}}},
                 BODY_MODELS[("POST", "/api/admin/dry-run")])
    (problem,) = caught.value.problems
    assert problem["path"] == "change.op" and "retire_line" in problem["message"]


async def test_given_a_check_needing_live_state_when_it_fails_then_it_is_reported_as_a_problem_too(client):
    status, answer = await _send(client, "PATCH", "/api/admin/lines/99999", {"fields": {"greeting": "g"},
                                                                            "comment": "x"})
    assert status == 404 and answer["error"] == "not-found"
    (problem,) = _assert_bilingual(answer)
    assert problem["field"] == "number" and "99999" in problem["message"] and "没有线路" in problem["message_zh"]
    status, answer = await _send(client, "POST", f"/api/desk/tickets/{client.ticket_id}/close",
                                 {"version_id": 99, "answer": "已答复"})
    assert status == 409 and answer["error"] == "conflict"
    (problem,) = _assert_bilingual(answer)
    assert problem["field"] == "version_id" and "刷新" in problem["message_zh"]


# -- hostile bodies: a clear 4xx, never a 500 ----------------------------------------------------

HOSTILE = [
    ("huge", b'{"comment": "' + b"x" * 300_000 + b'"}', "larger than"),
    ("deep", b'{"comment": "x", "fields": ' + b'{"a": ' * 200 + b"1" + b"}" * 200 + b"}", "deeper than"),
    ("NaN", b'{"comment": "x", "fields": {"overflow_seconds": NaN}}', "NaN"),
    ("Infinity", b'{"comment": "x", "fields": {"overflow_seconds": -Infinity}}', "Infinity"),
    ("5,000-digit number", b'{"comment": "x", "fields": {"overflow_seconds": ' + b"9" * 5000 + b"}}", "too long"),
    ("lone surrogate", b'{"comment": "x\\ud800", "fields": {}}', "surrogate"),
    ("not UTF-8", b'{"comment": "\xff"}', "UTF-8"),
    ("not an object", b"[1, 2, 3]", "JSON object"),
    ("null", b"null", "JSON object"),
    ("empty", b"", "not valid JSON"),
    ("wrong types", b'{"comment": 5, "fields": [1], "effective_at": true}', "comment: must be text"),
    ("Arabic-Indic digits", b'{"number": "\\u0661\\u0662\\u0663\\u0664\\u0665", "version": "\\u0661"}',
     "number: must be the dialled number"),
]
ROUTES = [("PATCH", "/api/admin/lines/12315"), ("POST", "/api/admin/dry-run"), ("POST", "/api/admin/changes"),
          ("POST", "/api/desk/tickets/{ticket}/submit"), ("PUT", "/api/desk/tickets/{ticket}/draft")]


@pytest.mark.parametrize("body,reason", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
async def test_given_a_hostile_body_when_sent_then_a_clear_4xx_in_both_languages_and_nothing_changes(
        client, body, reason):
    for method, path in ROUTES:
        status, answer = await _send(client, method, path.format(ticket=client.ticket_id), body)
        assert 400 <= status < 500, (path, answer)
        _assert_bilingual(answer)
        if "must be" not in reason:  # the reader's refusals name the reason on every route
            assert reason in answer["message"], (path, answer)
    assert client.applied == []
    assert (await client.store.get_ticket(client.ticket_id))["status"] == "draft"


async def test_given_wrong_types_and_foreign_digits_when_sent_then_each_field_is_named(client):
    status, answer = await _send(client, "PATCH", "/api/admin/lines/12315", HOSTILE[10][1])
    assert status == 400 and [p["path"] for p in answer["details"]["problems"]] == [
        "comment", "effective_at", "fields"]
    status, answer = await _send(client, "POST", "/api/admin/dry-run", HOSTILE[11][1])
    assert status == 400 and [p["path"] for p in answer["details"]["problems"]] == ["number", "version"]


# -- the Chinese tables cover everything ---------------------------------------------------------

CONSTRAINT_ERRORS = {  # core schema node -> {constraint: error type}
    "str": {"": "string_type", "min_length": "string_too_short", "max_length": "string_too_long",
            "pattern": "string_pattern_mismatch"},
    "int": {"": "int_type", "ge": "greater_than_equal", "le": "less_than_equal", "gt": "greater_than",
            "lt": "less_than"},
    "bool": {"": "bool_type"},
    "literal": {"": "literal_error"},
    "list": {"": "list_type", "min_length": "too_short", "max_length": "too_long"},
    "dict": {"": "dict_type"},
    "model": {"": "model_type", "_": "model_attributes_type"},
    "model-fields": {"": "missing", "_": "extra_forbidden"},
    "tagged-union": {"": "union_tag_invalid", "_": "union_tag_not_found"},
}
SILENT = {"any", "nullable", "default", "model-field", "no-info", "with-info", "function-after", "function-before",
          "definitions", "definition-ref"}  # raise nothing themselves (custom errors: see the next test)


def _error_types(node, out: set) -> set:
    if isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, str):
            assert kind in CONSTRAINT_ERRORS or kind in SILENT, f"no error types known for core schema {kind!r}"
            for constraint, error in CONSTRAINT_ERRORS.get(kind, {}).items():
                if constraint in ("", "_") or node.get(constraint) is not None:
                    out.add(error)
        for key, value in node.items():
            if key not in ("metadata", "serialization"):
                _error_types(value, out)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _error_types(item, out)
    return out


def test_given_every_body_model_then_every_error_type_it_can_raise_has_english_and_chinese():
    types: set = set()
    for model in set(BODY_MODELS.values()):
        _error_types(model.__pydantic_core_schema__, types)
    assert {"missing", "extra_forbidden", "string_pattern_mismatch", "literal_error", "int_type"} <= types
    missing = types - set(MESSAGES)
    assert not missing, f"add English and Chinese to gateway.web.schema.MESSAGES for {sorted(missing)}"
    for kind, (en, zh) in MESSAGES.items():
        assert en and CJK.search(zh) or kind == "not_allowed", kind


def test_given_the_custom_checks_then_each_raises_a_type_with_english_and_chinese():
    sources = [*GATEWAY_DIR.glob("*/schemas*.py"), *GATEWAY_DIR.glob("web/schema*.py")]
    raised = {m for path in sources for m in re.findall(r'\bproblem\("([a-z_]+)"', path.read_text())}
    assert {"blank", "control_characters", "datetime_format", "datetime_offset", "dual_needs_two"} <= raised
    assert raised <= set(MESSAGES)


def test_given_every_error_id_in_the_gateway_then_it_has_a_chinese_sentence():
    ids = {m for path in GATEWAY_DIR.rglob("*.py")
           for m in re.findall(r'^\s+error_id = "([a-z0-9-]+)"', path.read_text(), re.M)}
    ids |= {"csrf", "bad-login", "unknown-host", "internal", "invalid-request"}
    assert len(ids) > 30 and not ids - set(ERROR_ZH), sorted(ids - set(ERROR_ZH))


def test_given_errors_of_each_kind_when_answered_then_the_body_has_the_contract():
    body = error_body(NotFound("no ticket 7"))
    assert body == {"error": "not-found", "message": "no ticket 7", "message_zh": "未找到", "details": {}}
    body = error_body(GatewayError("a line number is 3-20 digits / 线路号码为 3-20 位数字", details={"field": "number"}))
    assert body["message_zh"] == "线路号码为 3-20 位数字"
    assert body["details"]["problems"] == [{"path": "number", "field": "number", "message": "a line number is 3-20 "
                                            "digits", "message_zh": "线路号码为 3-20 位数字"}]
    assert split_bilingual("只有坐席 / only agents") == ("only agents", "只有坐席")
    assert split_bilingual("a / b") == ("a / b", None)
    config = GatewayError("1 configuration error(s)", details={"problems": [
        {"file": "hotlines.yaml", "line": 3, "field": "lines[2].queue", "message": "unknown queue 'q'"}]})
    config.error_id = "invalid-config"
    (problem,) = error_body(config)["details"]["problems"]
    assert problem["path"] == "lines[2].queue" and problem["field"] == "queue" and problem["line"] == 3
    assert problem["message_zh"]
    masked = error_body(NotFound("no call from 13800138000"))
    assert "13800138000" not in masked["message"]


# -- the OpenAPI document comes from the same models ---------------------------------------------


def _refs(node, out: list) -> list:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                out.append(value)
            else:
                _refs(value, out)
    elif isinstance(node, list):
        for item in node:
            _refs(item, out)
    return out


async def test_given_the_app_when_its_routes_are_listed_then_every_body_has_its_model_in_the_document(client):
    document = json.loads(json.dumps(openapi_document(), ensure_ascii=False))  # valid JSON, round trip
    served = await (await client.get("/api/openapi.json")).json()
    assert served == document
    schemas = document["components"]["schemas"]
    for ref in _refs(document, []):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    assert "$defs" not in json.dumps(document)
    routes = {(r.method, r.resource.canonical) for r in client.app_.router.routes()
              if r.method in ("POST", "PUT", "PATCH", "DELETE")}
    routes |= {("POST", "/api/login")}  # added when the app has users (build_app(users=...))
    assert routes - NO_BODY <= set(BODY_MODELS), sorted(routes - NO_BODY - set(BODY_MODELS))
    for (method, path), model in BODY_MODELS.items():
        body = document["paths"][path][method.lower()]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert schemas[model.__name__]["properties"].keys() == model.model_fields.keys()
    dry_run = schemas["DryRunBody"]
    assert dry_run["additionalProperties"] is False and dry_run["properties"]["number"]["pattern"] == "^[0-9]{3,20}$"
    assert set(schemas["SubmitBody"]["required"]) >= {"version_id", "category", "summary", "dispatch_mode", "units"}


def test_given_the_change_operations_then_the_schema_knows_each_op_the_service_applies():
    assert UNION_TAGS >= set(changes.OPS)
    assert SubmitBody.model_json_schema()["properties"]["category"]["enum"] == ["咨询", "建议", "举报", "投诉", "求助"]
