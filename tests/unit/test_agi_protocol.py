"""The pure AGI protocol module: environment, replies, command builders, code mapping."""

from __future__ import annotations

import pytest

from gateway.errors import ChannelHangup, LocalProtocolError, RemoteProtocolError
from gateway.pbx import agi
from gateway.pbx.agi import (
    END_OF_STREAM,
    NEED_DATA,
    AgiCommandError,
    AgiEnvironmentParser,
    AgiReply,
    AgiReplyReader,
    AgiUsageError,
    check_reply,
    parse_reply,
)

# As sent by the real Asterisk 22 in the sandbox (agi_accountcode is empty: "agi_accountcode: ").
ASTERISK_HEADER = (
    b"agi_network: yes\n"
    b"agi_network_script: ivr\n"
    b"agi_request: agi://127.0.0.1:4599/ivr\n"
    b"agi_channel: Local/s@caller-wait-00000003;1\n"
    b"agi_language: en\n"
    b"agi_type: Local\n"
    b"agi_uniqueid: uid-d1\n"
    b"agi_callerid: 13800138000\n"
    b"agi_calleridname: unknown\n"
    b"agi_context: ivr\n"
    b"agi_extension: 12345\n"
    b"agi_accountcode: \n"
    b"agi_arg_1: zh\n"
    b"agi_arg_2: night mode\n"
    b"\n"
)


def test_given_asterisk_header_when_fed_byte_by_byte_then_environment_is_typed() -> None:
    parser = AgiEnvironmentParser()
    results = [parser.receive_data(ASTERISK_HEADER[i : i + 1]) for i in range(len(ASTERISK_HEADER))]
    assert all(r is None for r in results[:-1])
    env = results[-1]
    assert env is not None and parser.environment is env
    assert env.uniqueid == "uid-d1"
    assert env.channel == "Local/s@caller-wait-00000003;1"
    assert env.callerid == "13800138000"
    assert env.calleridname == ""
    assert env.extension == "12345"
    assert env.context == "ivr"
    assert env.request == "agi://127.0.0.1:4599/ivr"
    assert env.network_script == "ivr"
    assert env.args == ["zh", "night mode"]
    assert env.raw["agi_accountcode"] == ""


def test_given_header_without_network_script_when_parsed_then_script_comes_from_url() -> None:
    env = AgiEnvironmentParser().receive_data(b"agi_request: agi://10.0.0.1/menu/main?x=1\r\n\r\n")
    assert env is not None and env.network_script == "menu/main"


def test_given_bytes_after_blank_line_when_parsed_then_they_are_kept_for_replies() -> None:
    parser = AgiEnvironmentParser()
    assert parser.receive_data(b"agi_uniqueid: u\n\n200 result=0\n") is not None
    assert parser.trailing_data == b"200 result=0\n"


@pytest.mark.parametrize(
    "data",
    [
        b"agi_uniqueid u1\n\n",  # no ':'
        b"uniqueid: u1\n\n",  # key without agi_
        b"agi_uniqueid: \xff\xfe\n\n",  # not UTF-8
        b"agi_a: 1\nagi_a: 2\n\n",  # twice
        b"\n",  # empty environment
    ],
)
def test_given_malformed_header_when_parsed_then_remote_protocol_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        AgiEnvironmentParser().receive_data(data)


def test_given_half_header_when_stream_ends_then_remote_protocol_error() -> None:
    parser = AgiEnvironmentParser()
    assert parser.receive_data(b"agi_uniqueid: u1\nagi_chan") is None
    with pytest.raises(RemoteProtocolError, match="closed"):
        parser.receive_data(b"")


def test_given_long_line_without_newline_when_limit_passed_then_refused_at_once() -> None:
    parser = AgiEnvironmentParser()
    assert parser.receive_data(b"agi_x: " + b"a" * 4000) is None
    with pytest.raises(RemoteProtocolError, match="longer than 4096"):
        parser.receive_data(b"a" * 100)


def test_given_many_lines_when_over_200_then_refused() -> None:
    parser = AgiEnvironmentParser()
    with pytest.raises(RemoteProtocolError, match="200 lines"):
        parser.receive_data(b"".join(b"agi_k%d: v\n" % i for i in range(201)))


def test_given_header_over_64k_when_fed_then_refused_before_blank_line() -> None:
    parser = AgiEnvironmentParser(max_lines=10_000)
    with pytest.raises(RemoteProtocolError, match="larger than 65536"):
        for i in range(20):
            parser.receive_data(b"agi_k%d: " % i + b"v" * 4000 + b"\n")
    assert i == 16  # refused on the line that crossed 64 KiB, not at the end


def test_given_header_near_64k_when_partial_line_crosses_limit_then_refused_without_newline() -> None:
    parser = AgiEnvironmentParser()
    for i in range(16):
        assert parser.receive_data(b"agi_k%d: " % i + b"v" * 4000 + b"\n") is None
    with pytest.raises(RemoteProtocolError, match="larger than 65536"):
        parser.receive_data(b"agi_last: " + b"v" * 2000)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"200 result=1\n", AgiReply(200, "1")),
        (b"200 result=0\n", AgiReply(200, "0")),
        (b"200 result=-1 (timeout) endpos=0", AgiReply(200, "-1", "timeout", 0)),
        (b"200 result=0 (timeout)", AgiReply(200, "0", "timeout")),
        (b"200 result=1 (randomerror) endpos=123", AgiReply(200, "1", "randomerror", 123)),
        (b"200 result= (timeout)", AgiReply(200, "", "timeout")),
        (b"200 result=12 (timeout)\r\n", AgiReply(200, "12", "timeout")),
        (b"200 result=1 (a (nested) value)", AgiReply(200, "1", "a (nested) value")),
        (b"200 result=0 Gosub complete", AgiReply(200, "0", message="Gosub complete")),
        (b"200 result=1 endpos=5 foo=bar", AgiReply(200, "1", endpos=5, extra={"foo": "bar"})),
        (b"510 Invalid or unknown command", AgiReply(510, message="Invalid or unknown command")),
        (
            b"511 Command Not Permitted on a dead channel or intercept routine",
            AgiReply(511, message="Command Not Permitted on a dead channel or intercept routine"),
        ),
        (b"503 result=-2 Memory allocation failure", AgiReply(503, "-2", message="Memory allocation failure")),
    ],
)
def test_given_reply_line_when_parsed_then_fields_are_typed(line: bytes, expected: AgiReply) -> None:
    assert parse_reply(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        b"hello world",
        b"HANGUP",
        b"200 ok",
        b"2000 result=1",
        b"200 result=1 (open",
        b"\xff\xfe",
        b"200 result=0 endpos=x",
    ],
)
def test_given_garbage_when_parsed_then_remote_protocol_error(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_reply(line)


def test_given_reply_line_over_4096_bytes_when_parsed_then_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="4096"):
        parse_reply(b"200 result=" + b"1" * 5000)
    reader = AgiReplyReader()
    reader.receive_data(b"200 result=" + b"1" * 5000)
    with pytest.raises(RemoteProtocolError, match="4096"):
        reader.next_reply()


def test_given_520_block_when_read_in_pieces_then_one_usage_reply() -> None:
    wire = (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: GET DATA <file to be streamed> [timeout] [max digits]\n"
        b"Stream the given file, and receive DTMF data.\n"
        b"520 End of proper usage.\n"
    )
    reader = AgiReplyReader()
    for i in range(0, len(wire), 7):
        assert reader.next_reply() is NEED_DATA
        reader.receive_data(wire[i : i + 7])
    reply = reader.next_reply()
    assert isinstance(reply, AgiReply) and reply.code == 520
    assert "Proper usage follows" in reply.message and "Stream the given file" in reply.message
    assert reader.next_reply() is NEED_DATA
    with pytest.raises(AgiUsageError):
        check_reply(reply)


def test_given_hangup_before_reply_when_read_then_hangup_noted_and_reply_returned() -> None:
    reader = AgiReplyReader()
    reader.receive_data(b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
    reply = reader.next_reply()
    assert reader.hung_up is True
    assert isinstance(reply, AgiReply) and reply.code == 511


def test_given_hangup_after_reply_when_consumed_then_noted_without_taking_reply() -> None:
    reader = AgiReplyReader()
    reader.receive_data(b"200 result=-1 endpos=0\nHANGUP\n")
    assert reader.next_reply() == AgiReply(200, "-1", endpos=0)
    assert reader.hung_up is False
    assert reader.consume_hangup() is True
    reader.receive_data(b"200 result=1\n")
    assert reader.next_reply() == AgiReply(200, "1")


def test_given_trying_then_final_when_read_then_only_final_returned() -> None:
    reader = AgiReplyReader(b"100 result=0 Trying...\n200 result=0 Gosub complete\n")
    assert reader.next_reply() == AgiReply(200, "0", message="Gosub complete")


def test_given_stream_end_when_between_or_inside_replies_then_eof_or_error() -> None:
    clean = AgiReplyReader()
    clean.receive_data(b"")
    assert clean.next_reply() is END_OF_STREAM
    truncated = AgiReplyReader(b"200 resu")
    truncated.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle"):
        truncated.next_reply()


def test_given_result_codes_when_checked_then_mapped_to_typed_errors() -> None:
    ok = AgiReply(200, "-1")
    assert check_reply(ok) is ok
    with pytest.raises(AgiCommandError):
        check_reply(parse_reply(b"510 Invalid or unknown command"))
    with pytest.raises(ChannelHangup):
        check_reply(parse_reply(b"511 Command Not Permitted on a dead channel or intercept routine"))
    with pytest.raises(AgiUsageError) as info:
        check_reply(parse_reply(b"520 Invalid command syntax.  Proper usage not available."))
    assert isinstance(info.value, LocalProtocolError)


def test_given_typed_builders_when_called_then_arguments_are_quoted() -> None:
    assert agi.answer() == b"ANSWER\n"
    assert agi.hangup() == b"HANGUP\n"
    assert agi.stream_file("/srv/p/welcome") == b'STREAM FILE /srv/p/welcome ""\n'
    assert agi.stream_file("/srv/my prompts/a", "12#") == b'STREAM FILE "/srv/my prompts/a" 12#\n'
    assert agi.get_data("/missing", 8000, 1) == b"GET DATA /missing 8000 1\n"
    assert agi.wait_for_digit(5000) == b"WAIT FOR DIGIT 5000\n"
    recording = agi.record_file("/rec/u1", "wav", "#", 60000, silence_s=3)
    assert recording == b"RECORD FILE /rec/u1 wav # 60000 s=3\n"
    assert agi.record_file("/rec/u1", "wav", "#", 1000, beep=True) == b"RECORD FILE /rec/u1 wav # 1000 BEEP\n"
    assert agi.set_variable("GW_QUEUE", "q1") == b"SET VARIABLE GW_QUEUE q1\n"
    assert agi.set_variable("X", 'say "hi" \\o/') == b'SET VARIABLE X "say \\"hi\\" \\\\o/"\n'
    assert agi.set_variable("X", "") == b'SET VARIABLE X ""\n'
    assert agi.get_variable("CALLERID_num") == b"GET VARIABLE CALLERID_num\n"
    assert agi.exec_("AudioSocket", "uuid-1", "127.0.0.1:9092") == b"EXEC AudioSocket uuid-1,127.0.0.1:9092\n"
    assert agi.verbose("hello world", 3) == b'VERBOSE "hello world" 3\n'
    assert agi.set_variable("N", "热线 12345") == 'SET VARIABLE N "热线 12345"\n'.encode()


@pytest.mark.parametrize(
    "build",
    [
        lambda: agi.set_variable("X", "a\nHANGUP"),
        lambda: agi.stream_file("/p\r"),
        lambda: agi.verbose("nul\0", 1),
        lambda: agi.set_variable("1BAD", "v"),
        lambda: agi.set_variable("A-B", "v"),
        lambda: agi.get_variable("X Y"),
        lambda: agi.stream_file("/p", "12a"),
        lambda: agi.get_data("/p", -1, 3),
        lambda: agi.get_data("/p", 1000, True),
        lambda: agi.wait_for_digit(1.5),
        lambda: agi.record_file("/r", "wav", "#", 1000, silence_s=-2),
        lambda: agi.exec_("Queue;rm", "x"),
        lambda: agi.exec_("Queue", "a,b"),
        lambda: agi.verbose("x", 9),
        lambda: agi.stream_file(""),
        lambda: agi.set_variable("X", "v" * 3000),
    ],
)
def test_given_bad_arguments_when_building_then_local_protocol_error(build) -> None:
    with pytest.raises(LocalProtocolError):
        build()
