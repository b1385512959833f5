"""Suggestions for the agent desk: what the call is, how urgent, who handles it.

Theory of operation
-------------------
``suggest(facts, catalogue=..., knowledge=..., history=...)`` is a pure function:
the facts of one draft ticket (what the caller said, the IVR choice, the line
dialled, the emergency guard's verdict, the confidentiality flag) and the rows
somebody else selected from the database go in; a :class:`Suggestions` comes
out (those types: :mod:`gateway.desk.suggest_model`). No I/O, no clock (the time of the call is a fact), no randomness: the same
ticket always gives the same suggestions, and every suggestion carries its
reason and the words that triggered it, because the agent decides and must see
why the desk thinks so.

1. **Request type** (咨询/建议/举报/投诉/求助). Cue words per type are found in the
   normalised transcript; the type's own name ("投诉") counts 2, other cues 1,
   and a cue right after a negation ("不是投诉") does not count. The IVR key
   choice is a strong prior: it stands unless another type outscores it in the
   transcript by 2 or more (its name said, or two more cues); then the
   transcript wins and the reason names both.
2. **Place, matters, escalation** come from the catalogue
   (:mod:`gateway.desk.catalogue`): street or township, district, matter
   keywords, and the 突发性/群体性/极端性 words.
3. **Units**, best first: escalation (dual to police and local government),
   then up to two matters (their units and dispatch mode; "street" or "district"
   resolve to the request's place, falling back from street to district), then
   the department of a former departmental line as a prior, and when nothing
   else matched, the place alone (属地).
4. **Urgency**: emergency (the guard fired, or emergency words), urgent
   (vulnerable or trapped people, escalation, a matter that is urgent always or
   in the heating season), else normal.
5. **Answers** from the knowledge base when the type is 咨询 or the caller asked a
   question.
6. **History**: of the rows given, ``earlier`` are the same caller's tickets of
   the last 30 days; ``similar_open`` are open tickets at the same street with
   the same matter (or, without a matter, the same type and similar wording):
   link instead of a duplicate dispatch. The snippet of another caller's
   confidential ticket is not shown.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.desk.catalogue import Catalogue, EscalationHit, MatterHit, PlaceHit, Unit, find_all, normalize
from gateway.desk.knowledge import KnowledgeBase, bigrams
from gateway.desk.suggest_model import (
    MODE_LABELS,
    HistoryMatch,
    PastTicket,
    Suggestions,
    TicketFacts,
    TypeSuggestion,
    UnitSuggestion,
    UrgencySuggestion,
    quoted,
)
from gateway.ivr_flows.model import CATEGORIES

HISTORY_DAYS = 30
OPEN_STATUSES = ("draft", "submitted")
CLEAR_CUE = 2  # by how much the transcript must outscore the IVR choice to override it

# Request type cues: (its own name, counted 2), (other cues, counted 1).
TYPE_CUES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "投诉": (("投诉",), ("不满", "态度差", "态度恶劣", "不作为", "没人管", "推诿", "太过分", "凭什么", "扰民",
                      "没有人管", "不给退", "不处理")),
    "举报": (("举报",), ("违法", "违规", "偷排", "私自", "非法", "无证", "黑作坊", "地沟油", "造假", "违建", "违章")),
    "建议": (("建议",), ("希望", "能不能", "能否", "最好", "应该", "增设", "多设", "提个意见", "改进")),
    "求助": (("求助",), ("帮忙", "帮帮", "帮我", "救命", "困难", "被困", "走不了", "没办法", "急需")),
    "咨询": (("咨询",), ("请问", "怎么办理", "如何办理", "怎么办", "在哪", "哪里办", "多少钱", "需要什么",
                      "什么时候", "怎么补办", "流程", "想问")),
}
NEGATIONS = ("不是", "不想", "不算", "不要", "并非", "没有")
QUESTION_CUES = ("请问", "怎么", "如何", "吗", "哪里", "哪儿", "什么时候", "多少", "是否", "能不能", "?", "想问")
EMERGENCY_CUES = ("着火", "起火", "失火", "爆炸", "有人晕倒", "昏迷", "没有呼吸", "大出血", "持刀", "拿刀", "跳楼",
                  "自杀", "燃气泄漏", "煤气泄漏")
VULNERABLE_CUES = ("老人", "老年人", "孩子", "小孩", "婴儿", "宝宝", "孕妇", "残疾", "瘫痪", "病人", "独居",
                   "行动不便")
TRAPPED_CUES = ("被困", "困在", "关在", "出不来", "卡在电梯")
LINE_MODES = {"retired": "已整体并入", "dual_number": "双号并行", "sub_centre": "设分中心"}


# -- the suggestion ---------------------------------------------------------------------------


def suggest(ticket: TicketFacts, *, catalogue: Catalogue, knowledge: KnowledgeBase,
            history: list[PastTicket] | tuple = ()) -> Suggestions:
    text = normalize(ticket.transcript)
    request_type = suggest_type(ticket.category, text)
    place = catalogue.find_place(text)
    matters = catalogue.find_matters(text)
    escalations = catalogue.find_escalations(text)
    asked = request_type.category == "咨询" or bool(find_all(text, QUESTION_CUES))
    earlier, similar = match_history(ticket, place, matters, request_type.category, catalogue, history)
    answers = tuple(knowledge.search(text)) if asked else ()
    return Suggestions(
        request_type=request_type,
        urgency=suggest_urgency(ticket, text, catalogue, matters, escalations),
        place=place,
        units=suggest_units(ticket, catalogue, place, matters, escalations),
        escalations=tuple(escalations),
        answers=answers,
        earlier=earlier,
        similar_open=similar,
        notes=_notes(ticket, request_type, similar, answers),
        catalogue_version=catalogue.version,
    )


def type_cues(text: str) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Per request type: (score, cues found), negated cues left out."""
    out = {}
    for category, (names, cues) in TYPE_CUES.items():
        score, found = 0, []
        for word in find_all(text, names + cues):
            at = text.find(normalize(word))
            if any(neg in text[max(0, at - 3):at] for neg in NEGATIONS):
                continue
            score += 2 if word in names else 1
            found.append(word)
        if found:
            out[category] = (score, tuple(found))
    return out


def suggest_type(ivr: str | None, text: str) -> TypeSuggestion:
    """The IVR choice as a prior; the transcript overrides it only when clearly stronger."""
    ivr = ivr if ivr in CATEGORIES else None
    cues = type_cues(text)
    ranked = sorted(cues, key=lambda c: (-cues[c][0], CATEGORIES.index(c)))
    score = lambda c: cues.get(c, (0, ()))[0]  # noqa: E731
    words = lambda c: cues.get(c, (0, ()))[1]  # noqa: E731
    others = lambda chosen: tuple((c, words(c)) for c in ranked if c != chosen)  # noqa: E731
    if ivr and not ranked:
        why = "无转写文本" if not text else "转写中没有类型线索"
        return TypeSuggestion(ivr, 0.6, f"IVR 按键选择了 {ivr}（{why}）")
    if ivr:
        best = ranked[0]
        if score(ivr) >= score(best):
            return TypeSuggestion(ivr, 0.9, f"IVR 按键选择了 {ivr}，且说了{quoted(words(ivr))}", words(ivr),
                                  others(ivr))
        if score(best) >= score(ivr) + CLEAR_CUE:
            return TypeSuggestion(best, 0.7, f"说了{quoted(words(best))}；IVR 按键选择的是 {ivr}，以来电人所说为准",
                                  words(best), others(best))
        return TypeSuggestion(ivr, 0.6, f"IVR 按键选择了 {ivr}（转写线索{quoted(words(best))}指向 {best}，不足以改判）",
                              words(ivr), others(ivr))
    if ranked:
        best = ranked[0]
        confidence = 0.8 if score(best) >= CLEAR_CUE else 0.5
        return TypeSuggestion(best, confidence, f"说了{quoted(words(best))}", words(best), others(best))
    asked = find_all(text, QUESTION_CUES)
    if asked:
        return TypeSuggestion("咨询", 0.4, f"听起来是提问（「{asked[0]}」）", tuple(asked))
    return TypeSuggestion(None, 0.0, "没有按键选择，转写中也没有类型线索，请坐席判断")


def suggest_urgency(ticket: TicketFacts, text: str, catalogue: Catalogue, matters: list[MatterHit],
                    escalations: list[EscalationHit]) -> UrgencySuggestion:
    words = find_all(text, EMERGENCY_CUES)
    if ticket.emergency or words:
        guard = tuple(ticket.emergency_words) or tuple(words)
        if ticket.emergency:
            why = "紧急守护已触发" + (quoted(guard) if guard else "（来电人按了紧急键）")
        else:
            why = "说了" + quoted(guard)
        return UrgencySuggestion("emergency", why + "：可能需要 110/119/120/122，请确认是否转紧急联动", guard)
    reasons, from_matters = [], []
    vulnerable, trapped = find_all(text, VULNERABLE_CUES), find_all(text, TRAPPED_CUES)
    if vulnerable:
        reasons.append("涉及" + quoted(vulnerable))
    if trapped:
        reasons.append("有人" + quoted(trapped))
    for hit in escalations:
        reasons.append(f"{hit.escalation.label}（「{hit.matched[0]}」）")
    season = catalogue.in_heating_season(ticket.received_at)
    for hit in matters:
        if hit.matter.urgent == "always" or (hit.matter.urgent == "heating_season" and season):
            reasons.append(hit.matter.name + ("（供暖季）" if hit.matter.urgent == "heating_season" else ""))
            from_matters += list(hit.matched)
    matched = vulnerable + trapped + [w for h in escalations for w in h.matched] + from_matters
    if reasons:
        return UrgencySuggestion("urgent", "加急：" + "；".join(reasons), tuple(dict.fromkeys(matched)))
    return UrgencySuggestion("normal", "未发现紧急或加急线索")


def _resolve(catalogue: Catalogue, targets: tuple[str, ...], place: PlaceHit | None):
    units, notes, missing = [], [], []
    for target in targets:
        unit, note = catalogue.resolve(target, place)
        if note:
            notes.append(note)
        if unit is None:
            missing.append(target)
        elif unit not in units:
            units.append(unit)
    return tuple(units), notes, tuple(missing)


def suggest_units(ticket: TicketFacts, catalogue: Catalogue, place: PlaceHit | None, matters: list[MatterHit],
                  escalations: list[EscalationHit]) -> tuple[UnitSuggestion, ...]:
    out: list[UnitSuggestion] = []
    where = f"地点「{place.label}」" if place else ""
    if escalations:
        units, notes, missing = _resolve(catalogue, catalogue.escalation_to, place)
        kinds = "、".join(f"{h.escalation.label}（说了{quoted(h.matched)}）" for h in escalations)
        reason = "；".join([f"{kinds}：公安与属地政府双派", *notes])
        out.append(UnitSuggestion("dual", units, reason, tuple(w for h in escalations for w in h.matched),
                                  "escalation", None, missing, 0.9))
    line_unit = catalogue.unit_for_department(ticket.line_department)
    for hit in matters[:2]:
        matter = hit.matter
        units, notes, missing = _resolve(catalogue, matter.to, place)
        names = "、".join(u.name for u in units) or "（待确认）"
        parts = [f"事项「{matter.name}」（说了{quoted(hit.matched)}）→ {MODE_LABELS[matter.mode]} {names}"]
        parts += [where] if where and any(t in ("street", "district", "police") for t in matter.to) else []
        parts += notes
        if line_unit and line_unit in units:
            parts.append(f"与来电线路 {ticket.line_number} 的归口部门一致")
        confidence = 0.6 if missing else 0.8
        out.append(UnitSuggestion(matter.mode, units, "；".join(parts), hit.matched, "matter", matter.id,
                                  missing, confidence if hit is matters[0] else round(confidence - 0.2, 2)))
    if line_unit and not any(line_unit in s.units for s in out):
        mode = LINE_MODES.get(ticket.merge_mode or "", ticket.merge_mode or "")
        reason = (f"来电拨打原 {ticket.line_number}{' ' + ticket.line_name if ticket.line_name else ''}"
                  f"（{mode}），归口 {line_unit.name}")
        out.append(UnitSuggestion("direct", (line_unit,), reason + ("" if out else "；未识别其他事项"), (),
                                  "line", None, (), 0.3 if out else 0.5))
    if not out and place:
        unit = place.street or place.district
        reason = f"未识别事项，按属地直派 {unit.name}（说了{quoted(place.matched)}）"
        out.append(UnitSuggestion("direct", (unit,), reason, place.matched, "place", None, (), 0.3))
    return tuple(out)


# -- history ----------------------------------------------------------------------------------


def match_history(ticket: TicketFacts, place: PlaceHit | None, matters: list[MatterHit], category: str | None,
                  catalogue: Catalogue, history) -> tuple[tuple[HistoryMatch, ...], tuple[HistoryMatch, ...]]:
    """``earlier`` (same caller, last 30 days) and ``similar_open`` (open, same street and demand)."""
    street = place.street if place else None
    earlier, similar = [], []
    for past in sorted(history, key=lambda p: (p.created_at is not None, p.created_at or 0, p.id), reverse=True):
        if past.id == ticket.ticket_id or not _recent(past, ticket.received_at):
            continue
        is_open = past.status in OPEN_STATUSES
        same_caller = bool(ticket.caller) and past.caller == ticket.caller
        if not same_caller and not (is_open and street):
            continue
        demand = _same_demand(ticket, past, matters, category, catalogue)
        snippet = past.snippet if same_caller or not past.confidential else None
        date = _local_date(past.created_at, catalogue.timezone)
        head = f"#{past.id}（{date}，{past.category or '未分类'}，{_STATUS.get(past.status, past.status)}）"
        if same_caller:
            repeat = bool(is_open and demand)
            reason = "；".join([f"同一来电号码的工单 {head}", *demand[:1]]
                              + (["可能是同一诉求的重复来电，可关联原工单"] if repeat else []))
            earlier.append(HistoryMatch(past.id, past.created_at, past.category, past.status, snippet, reason,
                                        tuple(demand[1:]), repeat))
        if is_open and demand and street and _street_of(past, catalogue) == street:
            reason = f"同一地点「{street.name}」、{demand[0]}，在办工单 {head}：建议关联而非重复派单"
            similar.append(HistoryMatch(past.id, past.created_at, past.category, past.status, snippet, reason,
                                        (street.name, *demand[1:]), True))
    return tuple(earlier[:10]), tuple(similar[:5])


def _street_of(past: PastTicket, catalogue: Catalogue) -> Unit | None:
    hit = catalogue.find_place(" ".join([past.place or "", *past.units, past.snippet]))
    return hit.street if hit else None


def _same_demand(ticket: TicketFacts, past: PastTicket, matters: list[MatterHit], category: str | None,
                 catalogue: Catalogue) -> list[str]:
    """[reason, matched words...] when ``past`` looks like the same demand, else [].

    The same matter of the catalogue; or, when neither names a matter, the same request type
    and at least 3 shared bigrams making up 30 % of this transcript's.
    """
    mine = {h.matter.id: h.matter.name for h in matters}
    theirs = catalogue.find_matters(past.snippet)
    shared = [mine[h.matter.id] for h in theirs if h.matter.id in mine]
    if shared:
        return ["同一事项" + quoted(shared), *shared]
    if mine or theirs or not category or past.category != category:
        return []
    grams = bigrams(ticket.transcript)
    words = sorted(grams & bigrams(past.snippet))
    if len(words) >= 3 and len(words) >= 0.3 * len(grams):
        return ["相近描述" + quoted(words[:4]), *words]
    return []


def _local_date(when: datetime | None, tz: str) -> str:
    if when is None:
        return "日期不详"
    return (when.astimezone(ZoneInfo(tz)) if when.tzinfo else when).date().isoformat()


_STATUS = {"draft": "待处理", "submitted": "已派单办理中", "answered": "已答复办结"}


def _recent(past: PastTicket, now: datetime | None) -> bool:
    if now is None or past.created_at is None:
        return True
    try:
        return now - timedelta(days=HISTORY_DAYS) <= past.created_at <= now
    except TypeError:  # naive and aware datetimes: the selection was made by the store already
        return True


def _notes(ticket: TicketFacts, request_type: TypeSuggestion, similar, answers) -> tuple[str, ...]:
    notes = []
    if ticket.confidential:
        notes.append("来电人要求对承办单位保密身份：派单不带姓名和来电号码，由 12345 转达")
    elif request_type.category == "举报":
        notes.append("举报类诉求：可询问来电人是否要求对承办单位保密身份")
    if not ticket.caller:
        notes.append("来电号码未知：无法关联同一来电人的历史工单")
    if similar:
        notes.append(f"有 {len(similar)} 张同地点同诉求的在办工单：可关联而不新派")
    if request_type.category == "咨询" and answers:
        notes.append("咨询类诉求且知识库有答案：可当场答复办结")
    return tuple(notes)
