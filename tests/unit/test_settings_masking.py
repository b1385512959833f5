from __future__ import annotations

import logging

import pytest

from gateway.errors import SettingsError
from gateway.logs import MaskingFilter
from gateway.masking import mask_number, mask_text
from gateway.settings import ensure_ami_secret, load_settings


def test_given_no_environment_when_loaded_then_every_listener_is_on_loopback(tmp_path):
    s = load_settings({"GATEWAY_STATE_DIR": str(tmp_path)})
    assert (s.http_host, s.http_port, s.agi_host, s.agi_port, s.ami_port) == ("127.0.0.1", 8080, "127.0.0.1", 4573, 5038)
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path}/gateway.db"


@pytest.mark.parametrize("env", [
    {"GATEWAY_HTTP_PORT": "eighty"}, {"GATEWAY_AGI_PORT": "70000"}, {"GATEWAY_LOG_JSON": "maybe"},
    {"GATEWAY_PBX_PEERS": "not-an-ip"}, {"GATEWAY_AGI_READ_TIMEOUT": "-1"},
])
def test_given_a_bad_setting_when_loaded_then_the_error_names_the_variable(env):
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert next(iter(env)) in str(caught.value)


def test_given_false_as_text_when_a_boolean_is_read_then_it_is_false():
    assert load_settings({"GATEWAY_LOG_JSON": "false"}).log_json is False
    assert load_settings({"GATEWAY_LOG_JSON": "TRUE"}).log_json is True


def test_given_a_new_install_when_the_secret_is_needed_then_it_is_generated_once_and_private(tmp_path):
    first = ensure_ami_secret(tmp_path)
    assert len(first) >= 24 and ensure_ami_secret(tmp_path) == first
    assert (tmp_path / "secrets" / "ami.secret").stat().st_mode & 0o077 == 0


def test_given_a_sandbox_path_when_translated_then_escapes_are_refused(tmp_path):
    s = load_settings({"GATEWAY_STATE_DIR": str(tmp_path)})
    assert s.local_path("/srv/gw/recordings/a.wav") == (tmp_path / "asterisk/recordings/a.wav").resolve()
    with pytest.raises(ValueError):
        s.local_path("/srv/gw/../../etc/passwd")
    with pytest.raises(ValueError):
        s.local_path("/etc/passwd")


def test_given_numbers_when_masked_then_only_ends_show():
    assert mask_number("13800138000") == "138****8000"
    assert mask_number("12345") == "***45"
    assert mask_text("caller 13800138000 called 12345") == "caller 138****8000 called 12345"


def test_given_a_log_record_with_a_number_when_filtered_then_it_is_masked():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "call from %s", ("13800138000",), None)
    MaskingFilter().filter(record)
    assert record.getMessage() == "call from 138****8000"
