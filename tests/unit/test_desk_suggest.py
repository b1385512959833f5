"""Desk suggestions for realistic calls: type, urgency, units, answers, history, each with its reason."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.desk.catalogue_load import load_catalogue
from gateway.desk.knowledge import load_knowledge
from gateway.desk.suggest import suggest
from gateway.desk.suggest_model import PastTicket, TicketFacts

CONFIG = Path(__file__).resolve().parents[2] / "config"
CST = timezone(timedelta(hours=8))
WINTER = datetime(2027, 1, 10, 9, 30, tzinfo=CST)
SUMMER = datetime(2027, 7, 10, 9, 30, tzinfo=CST)
NIGHT_WORK = "我要投诉，朝阳区三里屯街道工体北路有个饭馆晚上十二点还在施工，噪音太大了"


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue(CONFIG / "catalogue.yaml")


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge(CONFIG / "knowledge")


@pytest.fixture()
def run(catalogue, knowledge):
    def run(transcript="", history=(), **facts):
        facts.setdefault("caller", "caller-a")
        facts.setdefault("received_at", WINTER)
        return suggest(TicketFacts(transcript=transcript, **facts), catalogue=catalogue, knowledge=knowledge,
                       history=list(history))
    return run


def names(unit_suggestion) -> list[str]:
    return [u.name for u in unit_suggestion.units]


# -- the calls of the brief -------------------------------------------------------------------


def test_given_a_night_construction_complaint_when_suggested_then_complaint_dual_to_housing_and_street(run):
    s = run(NIGHT_WORK)
    assert (s.request_type.category, s.request_type.reason) == ("投诉", "说了「投诉」")
    assert s.place.label == "朝阳区三里屯街道" and s.place.matched == ("朝阳区", "三里屯街道", "工体北路")
    first, second = s.units
    assert (first.mode, names(first), first.matter) == ("dual", ["市住房城乡建设委", "三里屯街道"], "night-construction")
    assert first.matched == ("施工", "晚上", "十二点")
    assert first.reason == ("事项「夜间施工扰民」（说了「施工」「晚上」「十二点」）→ 双派 市住房城乡建设委、三里屯街道；"
                            "地点「朝阳区三里屯街道」")
    assert (second.mode, names(second), second.matter) == ("direct", ["三里屯街道"], "noise")
    assert first.confidence > second.confidence
    assert s.urgency.level == "normal" and s.answers == ()


def test_given_a_lost_social_security_card_question_when_suggested_then_consultation_with_the_answer(run):
    s = run("请问社保卡丢了怎么补办")
    assert s.request_type.category == "咨询" and s.request_type.matched == ("请问", "怎么补办")
    assert s.answers[0].entry.id == "social-card-reissue"
    assert s.answers[0].matched[:3] == ("社保卡", "丢了", "补办")
    assert "12333" in s.answers[0].entry.answer
    assert "咨询类诉求且知识库有答案：可当场答复办结" in s.notes


def test_given_dozens_of_households_without_water_when_suggested_then_mass_dual_to_police_and_local_government(run):
    s = run("我们小区几十户人家停水两天了没人管")
    escalation = s.units[0]
    assert (escalation.source, escalation.mode, escalation.matched) == ("escalation", "dual", ("几十户",))
    assert names(escalation) == ["市公安局"] and escalation.missing == ("street",)  # the place was not said
    assert escalation.reason.startswith("群体性（说了「几十户」）：公安与属地政府双派")
    assert "请向来电人确认属地街道乡镇" in escalation.reason
    assert (s.units[1].matter, names(s.units[1])) == ("water-outage", ["市自来水集团"])
    assert s.urgency.level == "urgent"
    assert s.urgency.reason == "加急：群体性（「几十户」）；停水（供暖季）"
    assert s.request_type.category == "投诉" and s.request_type.reason == "说了「没人管」"


def test_given_a_mass_request_with_a_place_when_suggested_then_the_local_police_station_and_street(run):
    s = run("望京南湖东园整栋楼的业主们聚集在物业门口")
    escalation = s.units[0]
    assert names(escalation) == ["望京派出所", "望京街道"] and escalation.missing == ()
    assert escalation.matched == ("整栋楼", "业主们", "聚集")


def test_given_an_extreme_request_in_a_district_when_suggested_then_district_police_and_district(run):
    s = run("海淀区有个工人爬上塔吊说不给工钱就跳下来")
    escalation = s.units[0]
    assert names(escalation) == ["市公安局海淀分局", "海淀区政府"]
    assert "未识别街道乡镇，改派 海淀区政府" in escalation.reason
    assert s.units[1].matter == "unpaid-wages"


def test_given_a_confidential_caller_when_suggested_then_a_note_and_nothing_identifying_in_the_reasons(run):
    s = run("我要举报，中关村大街有个黑作坊用地沟油", caller="13800138000", confidential=True)
    assert s.request_type.category == "举报"
    assert "来电人要求对承办单位保密身份：派单不带姓名和来电号码，由 12345 转达" in s.notes
    assert s.units[0].matter == "food-safety" and names(s.units[0]) == ["市市场监管局"]
    assert "13800138000" not in json.dumps(s.to_json(), ensure_ascii=False)


def test_given_a_tip_off_without_confidentiality_when_suggested_then_the_agent_is_reminded_to_ask(run):
    s = run("我要举报，有个工厂半夜偷排污水")
    assert "举报类诉求：可询问来电人是否要求对承办单位保密身份" in s.notes


def test_given_only_the_ivr_choice_when_suggested_then_that_type_and_nothing_invented(run):
    s = run("", category="建议")
    assert (s.request_type.category, s.request_type.confidence) == ("建议", 0.6)
    assert s.request_type.reason == "IVR 按键选择了 建议（无转写文本）"
    assert s.units == () and s.answers == () and s.place is None
    assert (s.urgency.level, s.urgency.reason) == ("normal", "未发现紧急或加急线索")


def test_given_a_call_on_the_former_environment_line_when_nothing_matches_then_its_department(run):
    s = run("你好，我想反映一下我们村口那个厂子的问题", line_number="12369", line_name="环保举报热线",
            line_department="市生态环境局", merge_mode="dual_number")
    (line,) = s.units
    assert (line.source, names(line)) == ("line", ["市生态环境局"])
    assert line.reason == "来电拨打原 12369 环保举报热线（双号并行），归口 市生态环境局；未识别其他事项"


def test_given_a_former_line_and_a_matching_matter_when_suggested_then_the_matter_says_it_agrees(run):
    s = run("路灯坏了好几天了", line_number="12319", line_name="城市管理服务热线",
            line_department="市城市管理委员会", merge_mode="retired")
    (matter,) = s.units  # the line's unit is already suggested: no second, weaker suggestion
    assert names(matter) == ["市城市管理委"] and matter.reason.endswith("与来电线路 12319 的归口部门一致")


def test_given_a_former_line_and_another_matter_when_suggested_then_the_line_comes_after_the_matter(run):
    s = run("小区垃圾站堆满了好几天没人清", line_number="12369", line_department="市生态环境局",
            merge_mode="dual_number")
    assert [x.source for x in s.units] == ["matter", "line"]
    assert s.units[1].confidence < s.units[0].confidence


def test_given_a_place_but_no_matter_when_suggested_then_the_street_as_local_unit(run):
    s = run("太古里那边的事情我想反映一下")
    (local,) = s.units
    assert (local.source, names(local)) == ("place", ["三里屯街道"])
    assert local.reason == "未识别事项，按属地直派 三里屯街道（说了「太古里」）"


# -- request type -----------------------------------------------------------------------------


def test_given_the_ivr_said_consultation_and_the_caller_reports_when_suggested_then_the_transcript_wins(run):
    s = run("我要举报，有个工厂半夜偷排污水", category="咨询")
    t = s.request_type
    assert (t.category, t.confidence, t.matched) == ("举报", 0.7, ("举报", "偷排"))
    assert t.reason == "说了「举报」「偷排」；IVR 按键选择的是 咨询，以来电人所说为准"


def test_given_a_weak_cue_against_the_ivr_when_suggested_then_the_ivr_choice_stands(run):
    t = run("希望你们管一管", category="投诉").request_type
    assert (t.category, t.confidence) == ("投诉", 0.6)
    assert t.reason == "IVR 按键选择了 投诉（转写线索「希望」指向 建议，不足以改判）"
    assert t.alternatives == (("建议", ("希望",)),)


def test_given_the_ivr_and_the_transcript_agree_when_suggested_then_high_confidence(run):
    t = run(NIGHT_WORK, category="投诉").request_type
    assert (t.category, t.confidence, t.reason) == ("投诉", 0.9, "IVR 按键选择了 投诉，且说了「投诉」")


def test_given_a_negated_cue_when_suggested_then_it_does_not_count(run):
    s = run("我不是投诉，就是想问问供暖什么时候开始", category="投诉")
    assert s.request_type.category == "咨询" and "投诉" not in s.request_type.matched
    assert s.answers[0].entry.id == "heating-season"


def test_given_spaced_asr_output_without_ivr_when_suggested_then_a_plain_question_is_a_consultation(run):
    t = run("公积金 能 取 吗").request_type
    assert (t.category, t.confidence, t.reason) == ("咨询", 0.4, "听起来是提问（「吗」）")


def test_given_nothing_to_go_on_when_suggested_then_no_type_and_the_agent_decides(run):
    t = run("喂喂").request_type
    assert (t.category, t.confidence) == (None, 0.0) and "请坐席判断" in t.reason


# -- urgency ----------------------------------------------------------------------------------


def test_given_the_emergency_guard_fired_when_suggested_then_emergency_with_its_words(run):
    u = run("楼道里着火了", emergency=True, emergency_words=("着火",)).urgency
    assert (u.level, u.matched) == ("emergency", ("着火",))
    assert u.reason == "紧急守护已触发「着火」：可能需要 110/119/120/122，请确认是否转紧急联动"


def test_given_the_emergency_key_without_words_when_suggested_then_emergency_says_the_key(run):
    u = run("", emergency=True).urgency
    assert u.level == "emergency" and u.reason.startswith("紧急守护已触发（来电人按了紧急键）")


def test_given_an_old_person_and_cold_radiators_in_winter_when_suggested_then_urgent_with_both_reasons(run):
    s = run("家里就一个老人，暖气片冰凉，室温才十二度")
    assert s.urgency.level == "urgent"
    assert s.urgency.reason == "加急：涉及「老人」；暖气不热（供暖季）"
    assert names(s.units[0]) == ["市热力集团"]


def test_given_a_water_outage_in_summer_when_suggested_then_normal(run):
    assert run("家里停水了", received_at=SUMMER).urgency.level == "normal"
    assert run("家里停水了", received_at=WINTER).urgency.level == "urgent"


def test_given_someone_trapped_when_suggested_then_urgent(run):
    u = run("电梯坏了有人被困在里面").urgency
    assert u.level == "urgent" and "「被困」" in u.reason


# -- history ----------------------------------------------------------------------------------


def _past(id_, days_ago, *, status="submitted", caller="caller-b", snippet="", place=None, category="投诉",
          confidential=False, units=()):
    return PastTicket(id_, WINTER - timedelta(days=days_ago), category, status, place, units, snippet, caller,
                      confidential)


def test_given_an_open_ticket_at_the_same_street_about_the_same_matter_when_suggested_then_link_it(run):
    same = _past(41, 2, snippet="三里屯那个饭馆半夜施工，吵得睡不着", place="朝阳区三里屯街道")
    other_street = _past(42, 2, snippet="望京晚上施工太吵", place="朝阳区望京街道")
    closed = _past(43, 3, status="answered", snippet="工体北路夜间施工扰民")
    other_matter = _past(44, 1, snippet="工体北路路灯不亮")
    s = run(NIGHT_WORK, history=[same, other_street, closed, other_matter])
    (match,) = s.similar_open
    assert (match.ticket_id, match.same_demand) == (41, True)
    assert match.reason == ("同一地点「三里屯街道」、同一事项「夜间施工扰民」「噪音扰民」，在办工单 #41（2027-01-08，投诉，"
                            "已派单办理中）：建议关联而非重复派单")
    assert match.matched == ("三里屯街道", "夜间施工扰民", "噪音扰民")
    assert s.earlier == ()  # another caller
    assert "有 1 张同地点同诉求的在办工单：可关联而不新派" in s.notes


def test_given_the_place_only_in_the_dispatched_units_when_suggested_then_still_the_same_street(run):
    past = _past(45, 1, snippet="夜里工地施工", units=("市住房城乡建设委", "三里屯街道"))
    assert [m.ticket_id for m in run(NIGHT_WORK, history=[past]).similar_open] == [45]


def test_given_the_same_callers_tickets_when_suggested_then_earlier_newest_first_and_repeat_flagged(run):
    repeat = _past(51, 1, caller="caller-a", snippet="工体北路晚上施工", place="三里屯街道")
    answered = _past(52, 5, caller="caller-a", status="answered", category="咨询", snippet="请问社保卡怎么补办")
    too_old = _past(53, 31, caller="caller-a", snippet="晚上施工")
    s = run(NIGHT_WORK, history=[answered, too_old, repeat])
    assert [m.ticket_id for m in s.earlier] == [51, 52]
    first, second = s.earlier
    assert first.same_demand and first.reason == ("同一来电号码的工单 #51（2027-01-09，投诉，已派单办理中）；"
                                                  "同一事项「夜间施工扰民」；可能是同一诉求的重复来电，可关联原工单")
    assert not second.same_demand and second.reason == "同一来电号码的工单 #52（2027-01-05，咨询，已答复办结）"
    assert [m.ticket_id for m in s.similar_open] == [51]


def test_given_an_unknown_caller_number_when_suggested_then_no_earlier_tickets_and_a_note(run):
    s = run(NIGHT_WORK, caller=None, history=[_past(61, 1, caller=None, snippet="晚上施工")])
    assert s.earlier == () and "来电号码未知：无法关联同一来电人的历史工单" in s.notes


def test_given_another_callers_confidential_ticket_when_matched_then_its_snippet_is_withheld(run):
    theirs = _past(71, 1, snippet="工体北路晚上施工，我是住302的张某", confidential=True)
    (match,) = run(NIGHT_WORK, history=[theirs]).similar_open
    assert match.snippet is None and "张某" not in json.dumps(run(NIGHT_WORK, history=[theirs]).to_json(),
                                                                ensure_ascii=False)


def test_given_no_matter_when_wording_and_type_match_then_similar_by_description(run):
    text = "三里屯街道幸福村小区门口的井盖丢了一直没人修"
    past = _past(81, 3, category="投诉", snippet="幸福村小区门口井盖丢了没人修")
    s = run(text, category="投诉", history=[past])
    (match,) = s.similar_open
    assert match.reason.startswith("同一地点「三里屯街道」、相近描述「")


def test_given_the_current_ticket_among_the_rows_when_suggested_then_it_is_not_its_own_history(run):
    me = _past(90, 0, caller="caller-a", snippet=NIGHT_WORK, place="三里屯街道")
    assert run(NIGHT_WORK, ticket_id=90, history=[me]).earlier == ()


# -- adapters and JSON ------------------------------------------------------------------------


def test_given_store_rows_when_converted_then_facts_and_past_tickets_carry_what_matching_needs(catalogue, knowledge):
    row = {"id": 7, "transcript": NIGHT_WORK, "category": None, "line_number": "12345",
           "line_name": "12345市民服务热线", "department": None, "merge_mode": "primary", "caller_number": "13800138000", "emergency": False,
           "emergency_words": [], "confidential": False, "created_at": WINTER.isoformat()}
    old = {"id": 3, "status": "submitted", "category": "投诉", "place": "三里屯街道", "summary": "夜间施工扰民",
           "transcript": None, "units": [{"id": "housing", "name": "市住房城乡建设委", "kind": "city_department"}],
           "caller_number": "13800138000", "confidential": False,
           "created_at": (WINTER - timedelta(days=1)).isoformat()}
    facts, past = TicketFacts.from_ticket(row), PastTicket.from_ticket(old)
    assert facts.received_at == WINTER and facts.caller == "13800138000" and facts.ticket_id == 7
    assert past.units == ("市住房城乡建设委",) and past.snippet == "夜间施工扰民"
    s = suggest(facts, catalogue=catalogue, knowledge=knowledge, history=[past, PastTicket.from_ticket(row)])
    assert [m.ticket_id for m in s.earlier] == [3] and [m.ticket_id for m in s.similar_open] == [3]


def test_given_suggestions_when_serialised_then_json_safe_with_english_keys(run):
    history = [_past(41, 2, snippet="三里屯半夜施工", place="三里屯街道", caller="caller-a")]
    out = run("我们小区几十户人家停水两天了没人管，请问什么时候来水", history=history).to_json()
    assert json.loads(json.dumps(out, ensure_ascii=False)) == out
    assert set(out) == {"available", "catalogue_version", "request_type", "urgency", "place", "escalations", "units",
                        "answers", "earlier", "similar_open", "notes"}
    assert out["units"][0]["mode_label"] == "双派" and out["units"][0]["units"][0]["kind"] == "police"
    assert out["escalations"] == [{"kind": "mass", "label": "群体性", "matched": ["几十户"]}]
    assert out["answers"][0]["id"] == "outage-notice" and out["answers"][0]["updated"] == "2027-01-10"
    assert out["earlier"][0]["created_at"] == "2027-01-08T09:30:00+08:00"
