"""The responsibility catalogue and the knowledge base: shipped files load, broken ones are refused
with file, line and field; lookups and search say what matched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.desk.catalogue import normalize
from gateway.desk.catalogue_load import load_catalogue, parse_catalogue
from gateway.desk.knowledge import load_knowledge, parse_knowledge
from gateway.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture()
def catalogue_file(tmp_path) -> Path:
    target = tmp_path / "catalogue.yaml"
    shutil.copy(CONFIG / "catalogue.yaml", target)
    return target


def _break(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str, nth: int = 1) -> int:
    hits = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    assert len(hits) >= nth, needle
    return hits[nth - 1]


def _problems(load, path):
    with pytest.raises(ConfigError) as caught:
        load(path)
    return caught.value.problems


# -- the shipped files ---------------------------------------------------------------------------


def test_given_the_shipped_catalogue_when_loaded_then_it_has_every_kind_of_unit_and_dual_matters():
    catalogue = load_catalogue(CONFIG / "catalogue.yaml")
    kinds = {u.kind for u in catalogue.units.values()}
    assert kinds == {"street", "township", "district", "city_department", "police", "enterprise"}
    assert {m.mode for m in catalogue.matters} == {"direct", "dual"}
    assert {e.kind for e in catalogue.escalations} == {"sudden", "mass", "extreme"}
    assert catalogue.unit(catalogue.police).name == "市公安局"
    for matter in ("噪音扰民", "占道经营", "违章建筑", "路灯不亮", "停水", "停电", "燃气", "暖气不热", "拖欠工资",
                   "食品安全", "垃圾清运", "物业服务", "共享单车乱停", "夜间施工扰民", "医保"):
        assert matter in {m.name for m in catalogue.matters}


def test_given_the_shipped_knowledge_when_loaded_then_15_to_25_dated_entries_with_sources():
    knowledge = load_knowledge(CONFIG / "knowledge")
    assert 15 <= len(knowledge.entries) <= 25
    assert len({e.id for e in knowledge.entries}) == len(knowledge.entries)
    assert all(e.source and e.updated and e.answer for e in knowledge.entries)
    assert " " not in knowledge.get("social-card-reissue").answer  # folded lines joined without a space


def test_given_the_hotline_departments_when_looked_up_then_each_former_line_has_its_unit():
    catalogue = load_catalogue(CONFIG / "catalogue.yaml")
    for department, unit in [("市城市管理委员会", "city-management"), ("市发展和改革委员会", "development"),
                             ("市市场监督管理局", "market"), ("市生态环境局", "environment"),
                             ("国家税务总局北京市税务局", "tax"), ("北京海关", "customs")]:
        assert catalogue.unit_for_department(department).id == unit
    assert catalogue.unit_for_department(None) is None


# -- lookups -----------------------------------------------------------------------------------


def test_given_spaced_asr_text_when_placed_then_street_district_and_landmark_are_found():
    catalogue = load_catalogue(CONFIG / "catalogue.yaml")
    hit = catalogue.find_place("我 住 在 望京 花家地 这边")
    assert (hit.district.id, hit.street.id) == ("chaoyang", "wangjing")
    assert hit.matched == ("望京", "花家地") and hit.label == "朝阳区望京街道"
    assert catalogue.find_place("海淀区这边").street is None


def test_given_a_construction_at_night_when_matched_then_the_specific_matter_comes_first():
    catalogue = load_catalogue(CONFIG / "catalogue.yaml")
    hits = catalogue.find_matters("工地半夜还在打桩，噪音太大")
    assert [h.matter.id for h in hits] == ["night-construction", "noise"]
    assert hits[0].matched == ("工地", "打桩", "半夜")
    assert [h.matter.id for h in catalogue.find_matters("工地白天施工")] == []  # needs a night word


@pytest.mark.parametrize("text, kind, word", [
    ("我们小区几十户人家停水两天了", "mass", "几十户"),
    ("上百人聚集在门口", "mass", "上百人"),
    ("楼里30多户没暖气", "mass", "30多户"),
    ("工人爬上塔吊讨薪", "extreme", "爬上塔吊"),
    ("路面突然塌了", "sudden", "突然"),
])
def test_given_sudden_mass_or_extreme_words_when_scanned_then_the_escalation_is_named(text, kind, word):
    catalogue = load_catalogue(CONFIG / "catalogue.yaml")
    hits = {h.escalation.kind: h.matched for h in catalogue.find_escalations(text)}
    assert word in hits[kind]


def test_given_no_crowd_when_scanned_then_clock_times_and_prices_are_not_mass():
    catalogue = load_catalogue(CONFIG / "catalogue.yaml")
    assert catalogue.find_escalations("晚上十二点还在施工，三十块钱一次") == []


def test_given_heating_season_dates_when_checked_then_the_season_wraps_the_new_year():
    from datetime import date

    catalogue = load_catalogue(CONFIG / "catalogue.yaml")
    assert catalogue.in_heating_season(date(2027, 1, 10)) and catalogue.in_heating_season(date(2026, 11, 15))
    assert not catalogue.in_heating_season(date(2027, 7, 1)) and not catalogue.in_heating_season(None)


def test_given_full_width_text_when_normalised_then_ascii_lower_case_without_spaces():
    assert normalize("望京ＳＯＨＯ　１２３４５ 号") == "望京soho12345号"


# -- catalogue validation ----------------------------------------------------------------------


def test_given_a_misspelt_key_when_loaded_then_refused_with_line_field_and_did_you_mean(catalogue_file):
    _break(catalogue_file, "    with_any: [乱停, 乱放, 堵, 占道, 堆]\n", "    with_anny: [乱停, 乱放, 堵, 占道, 堆]\n")
    (problem,) = _problems(load_catalogue, catalogue_file)
    assert problem.file == str(catalogue_file) and problem.line == _line_of(catalogue_file, "with_anny")
    assert problem.field.endswith(".with_anny") and "did you mean 'with_any'" in problem.message


def test_given_an_unknown_unit_when_loaded_then_the_reference_is_named(catalogue_file):
    _break(catalogue_file, "    to: [hrss]\n", "    to: [hrs]\n")
    (problem,) = _problems(load_catalogue, catalogue_file)
    assert problem.line == _line_of(catalogue_file, "to: [hrs]")
    assert problem.field.endswith(".to[0]") and "unknown unit 'hrs'" in problem.message
    assert "did you mean 'hrss'" in problem.message


def test_given_a_duplicate_unit_id_when_loaded_then_both_lines_are_named(catalogue_file):
    _break(catalogue_file, "{id: customs, name: 北京海关", "{id: tax, name: 北京海关")
    (problem,) = _problems(load_catalogue, catalogue_file)
    assert problem.line == _line_of(catalogue_file, "{id: tax, name: 北京海关")
    first = _line_of(catalogue_file, "{id: tax, name: 市税务局")
    assert problem.message == f"duplicate id 'tax' (also at line {first})"


def test_given_a_duplicate_matter_id_when_loaded_then_refused(catalogue_file):
    _break(catalogue_file, "  - id: street-vending\n", "  - id: noise\n")
    (problem,) = _problems(load_catalogue, catalogue_file)
    assert problem.line == _line_of(catalogue_file, "  - id: noise", nth=2)
    assert problem.message == "duplicate matter id 'noise'"


def test_given_empty_keywords_when_loaded_then_refused(catalogue_file):
    _break(catalogue_file, "    keywords: [公积金]\n", "    keywords: []\n")
    (problem,) = _problems(load_catalogue, catalogue_file)
    assert problem.line == _line_of(catalogue_file, "keywords: []")
    assert problem.message == "expected a non-empty list of keywords"


def test_given_a_bad_dispatch_mode_when_loaded_then_the_modes_are_listed(catalogue_file):
    _break(catalogue_file, "    dispatch: dual\n    to: [housing, street]\n",
           "    dispatch: duel\n    to: [housing, street]\n")
    (problem,) = _problems(load_catalogue, catalogue_file)
    assert problem.line == _line_of(catalogue_file, "dispatch: duel")
    assert "'duel' is not one of direct, dual; did you mean 'dual'?" == problem.message


def test_given_dual_dispatch_to_one_unit_when_loaded_then_refused(catalogue_file):
    _break(catalogue_file, "    to: [district, street]\n", "    to: [street]\n")
    (problem,) = _problems(load_catalogue, catalogue_file)
    assert problem.message == "dual dispatch goes to 2 unit(s), not 1"


def test_given_one_landmark_in_two_streets_when_loaded_then_the_ambiguity_is_refused(catalogue_file):
    _break(catalogue_file, "landmarks: [富力城,", "landmarks: [花家地, 富力城,")
    (problem,) = _problems(load_catalogue, catalogue_file)
    assert "'花家地' is used by 'wangjing' and 'shuangjing'" in problem.message


def test_given_several_mistakes_when_loaded_then_every_one_is_reported(catalogue_file):
    _break(catalogue_file, "    police: chaoyang-police\n", "    police: chaoyang-polise\n")
    _break(catalogue_file, "    kind: township\n", "    kind: village\n")
    _break(catalogue_file, "    urgent: always\n", "    urgent: sometimes\n")
    _break(catalogue_file, "{id: customs,", "{id: street,")
    _break(catalogue_file, "timezone: Asia/Shanghai", "timezone: Asia/Beijing")
    messages = [p.message for p in _problems(load_catalogue, catalogue_file)]
    assert "'street' is reserved (matters use it for the request's place)" in messages
    assert "unknown time zone 'Asia/Beijing'" in messages
    assert "unknown unit 'chaoyang-polise'" in messages
    assert any(m.startswith("'village' is not one of street, township") for m in messages)
    assert any(m.startswith("'sometimes' is not one of always, heating_season") for m in messages)


def test_given_not_yaml_or_a_python_tag_when_parsed_then_refused_without_running_anything():
    (problem,) = parse_catalogue_problems("city: [unclosed\n")
    assert "not valid YAML" in problem.message
    problems = parse_catalogue_problems("city: !!python/object/apply:os.system ['true']\n")
    assert any("not allowed" in p.message for p in problems)


def parse_catalogue_problems(text: str):
    with pytest.raises(ConfigError) as caught:
        parse_catalogue(text, "proposed.yaml")
    return caught.value.problems


# -- knowledge validation and search -----------------------------------------------------------

_ENTRY = """entries:
  - id: {id}
    title: 社保卡丢失补办
    keywords: [社保卡, 补办]
    answer: 先挂失，再补办。
    source: 演示
    updated: {updated}
"""


def test_given_a_duplicate_entry_id_in_two_files_when_loaded_then_the_second_is_named():
    with pytest.raises(ConfigError) as caught:
        parse_knowledge({"a.yaml": _ENTRY.format(id="card", updated="2027-01-01"),
                         "b.yaml": _ENTRY.format(id="card", updated="2027-01-01")})
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == ("b.yaml", 2, "entries[0].id")
    assert problem.message == "duplicate entry id 'card' (also in a.yaml)"


def test_given_a_bad_date_an_unknown_key_and_an_empty_answer_when_loaded_then_all_are_reported():
    text = _ENTRY.format(id="card", updated='"2027-13-01"').replace("    source:", "    sauce: x\n    source:")
    text = text.replace("answer: 先挂失，再补办。", 'answer: ""')
    with pytest.raises(ConfigError) as caught:
        parse_knowledge({"a.yaml": text})
    found = {(p.line, p.field, p.message) for p in caught.value.problems}
    assert (5, "entries[0].answer", "must not be empty") in found
    assert (6, "entries[0].sauce", "unknown key (did you mean 'source'?)") in found
    assert (8, "entries[0].updated", "'2027-13-01' is not a date YYYY-MM-DD") in found


def test_given_an_impossible_unquoted_date_when_loaded_then_a_problem_not_a_crash():
    with pytest.raises(ConfigError) as caught:
        parse_knowledge({"a.yaml": _ENTRY.format(id="card", updated="2027-13-01")})
    (problem,) = caught.value.problems
    assert problem.file == "a.yaml" and "month must be in 1..12" in problem.message


def test_given_an_empty_directory_when_loaded_then_refused(tmp_path):
    (problem,) = _problems(load_knowledge, tmp_path)
    assert problem.message == "no knowledge files (*.yaml)"


def test_given_a_consultation_when_searched_then_keywords_and_title_bigrams_explain_the_score():
    knowledge = load_knowledge(CONFIG / "knowledge")
    (hit,) = knowledge.search("请问社保卡丢了怎么补办")
    assert hit.entry.id == "social-card-reissue"
    assert hit.matched == ("社保卡", "丢了", "补办", "卡丢")
    assert hit.score == pytest.approx(3 + 2 * 4 / 6, abs=0.001)  # 3 keywords + 4 of the title's 6 bigrams


@pytest.mark.parametrize("text, entry", [
    ("公积金怎么提取", "housing-fund-withdrawal"),
    ("我想问一下居住证怎么办", "residence-permit"),
    ("孩子出生了怎么上户口", "newborn-hukou"),
    ("垃圾分类几点扔", "garbage-sorting"),
    ("今年什么时候开始供暖", "heating-season"),
    ("摇号怎么申请", "car-quota"),
    ("12345都管什么", "hotline-scope"),
    ("我反映问题会不会泄露我的个人信息", "hotline-privacy"),
])
def test_given_common_questions_when_searched_then_the_right_entry_comes_first(text, entry):
    knowledge = load_knowledge(CONFIG / "knowledge")
    assert knowledge.search(text)[0].entry.id == entry


def test_given_unrelated_or_empty_text_when_searched_then_nothing_and_k_is_respected():
    knowledge = load_knowledge(CONFIG / "knowledge")
    assert knowledge.search("") == [] and knowledge.search("今天天气不错") == []
    assert len(knowledge.search("社保卡 公积金 居住证 医保报销", k=2)) == 2
    first = knowledge.search("社保卡 公积金 居住证 医保报销", k=5)
    assert first == knowledge.search("社保卡 公积金 居住证 医保报销", k=5)  # deterministic
