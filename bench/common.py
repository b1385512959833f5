"""What the benches share: reading a running system (tickets, calls, processes), SIPp callers
and the check that the calls went the intended way.

Used by bench/foundation.py, bench/load.py and bench/soak.py. Nothing here starts or stops a
system: that is gateway_dev.system.System.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from gateway_dev import sandbox, sandbox_root
from gateway_dev.system import System, say_zh

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SCENARIO = BENCH / "sipp" / "uac_12345.xml"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
DTMF_DIR = Path("/usr/share/sip-tester")
KEY = "1"  # type menu: 咨询 -> queue q-consult
KEY_QUEUE = "q-consult"
SPEECH_TEXT = "小区门口的垃圾三天没有人清运，请尽快处理，谢谢。"
SPEECH_SECONDS = 6.0
# What bench/sipp/uac_12345.xml assumes (seconds after the 200 OK): see check_timeline.
SCENARIO_KEY_AT = 16.0
SCENARIO_TALK_AT = 32.5


# -- numbers -----------------------------------------------------------------------------------
def count_values(values) -> dict:
    """How often each value occurs, the most frequent first."""
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# -- processes ---------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of ``pid`` (and its reaped children), in seconds."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # fields[0] is the state (field 3); utime, stime, cutime, cstime are fields 14..17
    return sum(int(x) for x in fields[11:15]) / ticks


def proc_rss_fds(pid: int) -> tuple[int, int] | None:
    """(VmRSS in kB, open file descriptors) of ``pid``; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return (int(m.group(1)) if m else 0), fds


def fd_kinds(pid: int) -> dict[str, int]:
    """Open file descriptors of ``pid`` by kind: socket, pipe, anon_inode, file (by directory)."""
    out: dict[str, int] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else \
            os.path.dirname(target) or target
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (e.g. the gateway's speech workers)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(out))


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def asterisk_pid(sysm: System) -> int | None:
    return sandbox.running_pid(sysm.settings.instance_dir)


def active_channels(sysm: System) -> int | None:
    pid = asterisk_pid(sysm)
    if pid is None:
        return None
    try:
        out = sandbox.asterisk_rx(pid=pid, root=sandbox_root.root_dir(sysm.settings.cache_dir),
                                  command="core show channels count", timeout=10)
    except Exception:  # noqa: BLE001 - a busy Asterisk may not answer in time
        return None
    m = re.search(r"(\d+) active channel", out)
    return int(m.group(1)) if m else None


# -- the gateway's API -------------------------------------------------------------------------
def wait_idle(sysm: System, timeout: float = 180, log=print) -> bool:
    """Until no call is in the IVR, Asterisk has no channel and every journaled write is in the
    database (the call path writes through the journal: under load the database lags behind the
    calls, and rows read before the backlog drains would count as calls off the path). Bounded."""
    deadline = time.monotonic() + timeout
    backlog = None
    while time.monotonic() < deadline:
        try:
            status, health = sysm.http("/healthz", timeout=5, token=sysm.token())
        except OSError:
            health = {}
        backlog = (health.get("journal") or {}).get("backlog", 0) if isinstance(health.get("journal"), dict) else 0
        if health.get("calls_in_ivr", 1) == 0 and health.get("fastagi_sessions", 1) == 0 \
                and backlog == 0 and active_channels(sysm) == 0:
            return True
        time.sleep(1)
    log(f"warning: the system did not become idle (journal backlog {backlog})")
    return False


_ADMIN_TOKENS: dict[int, str] = {}


def admin_token(sysm: System) -> str:
    """An admin's session token: resetting the gateway's counters (POST /metrics?reset=1) needs one."""
    if id(sysm) not in _ADMIN_TOKENS:
        _ADMIN_TOKENS[id(sysm)] = sysm.login("bench-admin", "bench-admin-password-1", "admin")
    return _ADMIN_TOKENS[id(sysm)]


def reset_metrics(sysm: System) -> dict:
    return sysm.http("/metrics?reset=1", method="POST", token=admin_token(sysm))[1]


def metrics(sysm: System) -> dict:
    return sysm.http("/metrics?format=json", token=sysm.token())[1]


def ticket_total(sysm: System) -> int:
    status, body = sysm.http("/api/tickets?limit=1", token=sysm.token())
    return int(body.get("total", 0)) if status == 200 else -1


def tickets_since(sysm: System, previous_total: int) -> list[dict]:
    """The tickets written after the total was ``previous_total`` (newest first, paged by 200)."""
    wanted = ticket_total(sysm) - previous_total
    items: list[dict] = []
    offset = 0
    while len(items) < wanted:
        status, body = sysm.http(f"/api/tickets?limit=200&offset={offset}", token=sysm.token())
        page = body.get("items", []) if status == 200 else []
        if not page:
            break
        items += page
        offset += len(page)
    return items[:max(0, wanted)]


def call_records(sysm: System, uniqueids: list[str]) -> list[dict]:
    out = []
    for uid in uniqueids:
        status, body = sysm.http(f"/api/calls/{uid}", token=sysm.token())
        if status == 200:
            out.append(body)
    return out


def add_queue_agents(sysm: System, queue: str, agents: list[str], note: str) -> str:
    """The private config gets ``agents`` (simulated: they answer by themselves) as the only
    members of ``queue``; checked with `gateway config check` (its output returned)."""
    from gateway.hotlines import changes

    path = sysm.config_dir / "hotlines.yaml"
    data = changes.parse(path.read_text(encoding="utf-8"))  # round trip: its comments stay
    known = {str(a["id"]) for a in data["agents"]}
    data["agents"] += [{"id": a, "name": f"压测坐席{a}"} for a in agents if a not in known]
    if queue not in data["queues"]:
        raise RuntimeError(f"config/hotlines.yaml has no queue {queue}: the bench needs updating")
    data["queues"][queue]["members"] = list(agents)
    path.write_text(f"# {note}\n" + changes.dump(data), encoding="utf-8")
    return sysm.cli("config", "check", str(sysm.config_dir)).stdout.strip()


def wav_seconds(path: Path) -> float | None:
    import wave

    try:
        with wave.open(str(path)) as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, wave.Error):
        return None


def check_timeline(sysm: System, log=print) -> dict:
    """Does the SIPp caller's fixed timeline fit today's prompts? The key must fall inside the
    type menu's prompt whether or not the emergency-key prompt plays before it (it does when no
    live recogniser is free), well away from a prompt boundary: a key pressed between two AGI
    commands is lost. The talking must cover the recording's start."""
    p = sysm.settings.prompts_dir
    d = {k: wav_seconds(p / f"main-{k}.wav") for k in
         ("greeting", "emergency_notice", "korean_hint", "emergency_key", "type_menu", "confidential_menu",
          "describe", "beep", "to_queue")}
    if None in d.values():
        return {"prompts_s": d, "warning": "a prompt is missing"}
    type_start = d["greeting"] + d["emergency_notice"] + d["korean_hint"]
    latest_start = type_start + d["emergency_key"]
    type_prompt_end = type_start + d["type_menu"]
    record_start = SCENARIO_KEY_AT + d["confidential_menu"] + 4 + d["describe"] + d["beep"]
    out = {"prompts_s": {k: round(v, 2) for k, v in d.items()},
           "type_menu_prompt_s": [round(type_start, 1), round(latest_start + d["type_menu"], 1)],
           "record_starts_at_s": round(record_start, 1)}
    if not (latest_start + 1 <= SCENARIO_KEY_AT <= type_prompt_end - 1):
        out["warning"] = (f"the SIPp scenario presses its key at {SCENARIO_KEY_AT} s but the type menu's prompt "
                          f"starts at {type_start:.1f} s ({latest_start:.1f} s after the emergency-key prompt) and "
                          f"ends at {type_prompt_end:.1f} s: adjust bench/sipp/uac_12345.xml")
    elif not (SCENARIO_TALK_AT <= record_start + 1 <= SCENARIO_TALK_AT + SPEECH_SECONDS):
        out["warning"] = (f"the recording starts at ~{record_start:.1f} s but the scenario talks "
                          f"{SCENARIO_TALK_AT}..{SCENARIO_TALK_AT + SPEECH_SECONDS} s")
    if "warning" in out:
        log("warning: " + out["warning"])
    return out


# -- SIPp callers ------------------------------------------------------------------------------
def make_media(tmp: Path) -> dict:
    """1 s of silence (looped) and 6 s of the caller's description as raw G.711 u-law for SIPp's
    rtp_stream, the description also as wav. The description is spoken by the project's Mandarin
    caller voice (Kokoro): espeak-ng's Mandarin is heard as nonsense, which can set off the
    emergency guard and send the call to q-emergency."""
    silence, speech_ulaw = tmp / "silence.ulaw", tmp / "speech.ulaw"
    subprocess.run(["sox", "-D", "-n", "-r", "8000", "-c", "1", "-t", "ul", str(silence), "trim", "0", "1"],
                   check=True, capture_output=True)
    speech_wav = say_zh(SPEECH_TEXT, tmp / "speech.wav")
    speech6 = tmp / "speech6.wav"  # the same 6 s for both kinds of caller
    subprocess.run(["sox", str(speech_wav), "-r", "8000", "-c", "1", "-b", "16", str(speech6),
                    "pad", "0", str(SPEECH_SECONDS), "trim", "0", str(SPEECH_SECONDS)], check=True,
                   capture_output=True)
    subprocess.run(["sox", str(speech6), "-t", "ul", str(speech_ulaw)], check=True, capture_output=True)
    return {"silence": silence, "speech_ulaw": speech_ulaw, "speech_wav": speech6}


def sipp_command(target: str, media: dict, tmp: Path, *, calls: int, limit: int, rate: float,
                 timeout: float, key: str = KEY) -> list[str]:
    """SIPp callers of bench/sipp/uac_12345.xml to ``target`` (host:port): ``calls`` in all, at
    most ``limit`` at once, ``rate`` new calls a second; stat, errors and screen into ``tmp``."""
    from gateway_dev.system import free_ports, sipp_media_port

    (sip_local,) = free_ports(1, udp=True)
    media_port = sipp_media_port()
    return [
        SIPP, target, "-sf", str(SCENARIO), "-s", "12345",
        "-i", "127.0.0.1", "-p", str(sip_local), "-mi", "127.0.0.1", "-mp", str(media_port),
        "-key", "dtmf_pcap", str(DTMF_DIR / f"dtmf_2833_{key}.pcap"),
        "-key", "speech", f"{media['speech_ulaw']},1,0",
        "-key", "silence", f"{media['silence']},-1,0",
        "-m", str(calls), "-l", str(limit), "-r", f"{rate:g}", "-rp", "1000",
        "-trace_stat", "-stf", str(tmp / "stat.csv"), "-fd", "5",
        "-trace_err", "-error_file", str(tmp / "errors.log"),
        "-trace_screen", "-screen_file", str(tmp / "screen.log"),
        "-timeout", f"{timeout:g}s", "-nostdin",
    ]


def run_sipp(cmd: list[str], tmp: Path, hard_timeout: float) -> tuple[int, bool]:
    """Run SIPp in its own session until it exits (killed after ``hard_timeout`` s, and on the
    way out on Ctrl-C); (exit code, killed at the hard timeout)."""
    timed_out = False
    with open(tmp / "sipp.out", "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=tmp, start_new_session=True)
        try:
            rc = proc.wait(hard_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.terminate()
            try:
                rc = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
        finally:
            if proc.poll() is None:  # Ctrl-C while waiting: do not leave SIPp running
                proc.kill()
                proc.wait()
    return rc, timed_out


def read_sipp_stat(path: Path) -> dict:
    """SIPp's -trace_stat file: the last line's cumulative counters by column name."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh, delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


def sipp_tmp(label: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"gw-bench-sipp-{label}-"))


def sipp_figures(tmp: Path, rc: int, timed_out: bool, logs_dir: Path, label: str, want: int) -> dict:
    """SIPp's own counters; its files are kept under ``logs_dir``/``label`` when calls failed."""
    stat = read_sipp_stat(tmp / "stat.csv")
    errors_text = (tmp / "errors.log").read_text(errors="replace") if (tmp / "errors.log").exists() else ""
    completed = int(stat.get("SuccessfulCall(C)", 0) or 0)
    if completed < want or rc != 0:
        dest = logs_dir / label
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("sipp.out", "errors.log", "screen.log", "stat.csv"):
            if (tmp / name).exists():
                shutil.copy(tmp / name, dest / name)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "placed": int(stat.get("OutgoingCall(C)", 0) or 0),
        "completed": completed,
        "failed": int(stat.get("FailedCall(C)", 0) or 0),
        "failed_reasons": {k.replace("(C)", ""): int(v) for k, v in stat.items()
                           if k.startswith("Failed") and k.endswith("(C)") and v.isdigit() and int(v)},
        "sipp_rc": rc, "sipp_killed": timed_out,
        "sipp_errors_head": errors_text[:1500],
    }


def ticket_figures(sysm: System, tickets: list[dict], key: str = KEY, *, instances: bool = False) -> dict:
    """What the calls' tickets and call records say about the path each call took (``instances``:
    also ``call_instances``, each call's gateway instance, for a split over several gateways)."""
    records = call_records(sysm, [t["uniqueid"] for t in tickets])
    out = {
        "reached_agent": sum(1 for c in records if c.get("agent")),
        "tickets": len(tickets),
        "tickets_with_recording": sum(1 for t in tickets if (t.get("recording_duration_ms") or 0) > 0),
        "type_key_read": sum(1 for t in tickets
                             if any(s.get("node") == "type_menu" and s.get("key") == key for s in t["menu_path"])),
        "type_key_via": count_values(s.get("via", "keys") for t in tickets for s in t["menu_path"]
                                     if s.get("node") == "type_menu" and s.get("key") == key),
        "queues": count_values(t.get("queue") or "-" for t in tickets),
        "paths": count_values(">".join(f"{s.get('node')}:{s.get('key', s.get('result', ''))}"
                                       for s in t["menu_path"]) for t in tickets),
        "hangup_causes": count_values(f"{c.get('hangup_cause')} {c.get('hangup_cause_txt')}" for c in records),
    }
    if instances:
        out["call_instances"] = {c["uniqueid"]: c.get("instance") for c in records}  # the gateway that ran the IVR
    return out


def path_problems(name: str, b: dict, n: int, *, queue: str | None = KEY_QUEUE, key: str = KEY) -> list[str]:
    """Why a batch of ``n`` SIP callers did not follow the intended path: each was meant to have its
    key read at the type menu, its description recorded, reach ``queue`` and an agent. Figures of
    calls that fell back describe the fallback, so the bench fails instead."""
    if "error" in b:
        return [f"{name}: {b['error']}"]
    problems = []
    for what, got in (("completed", b["completed"]), ("reached an agent", b["reached_agent"]),
                      ("left a ticket", b["tickets"]), ("had the description recorded",
                                                           b["tickets_with_recording"])):
        if got < n:
            problems.append(f"{name}: {got} of {n} calls {what}")
    if b["type_key_read"] < n:
        problems.append(f"{name}: the type menu read key {key} on {b['type_key_read']} of {n} calls")
    if queue is not None:
        queued = b.get("queues", {}).get(queue, 0)
        if queued < n:
            others = {q: c for q, c in b.get("queues", {}).items() if q != queue}
            problems.append(f"{name}: {queued} of {n} calls reached {queue} (others: {others})")
    return problems


# -- a bench run: its JSON, its logs, its teardown and its exit code --------------------------------
class BenchRun:
    """One run of a bench: ``report`` saved as JSON under bench/results/<name>-<stamp>.json,
    failure logs under <name>-<stamp>-logs/, and ``guard()`` around the work: Ctrl-C / SIGTERM
    (exit 130) and a crash of the bench itself (exit 1) are recorded, the JSON always written."""

    def __init__(self, name: str, args, say, suffix: str = "") -> None:
        from datetime import datetime, timezone

        self.say = say
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.out_path = RESULTS / f"{name}-{stamp}{suffix}.json"
        self.logs_dir = RESULTS / f"{name}-{stamp}-logs"
        self.rc = 0
        self.report: dict = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "args": vars(args)}

    @staticmethod
    def machine() -> str:
        import platform

        return (f"{os.cpu_count()} CPUs, {platform.platform()}, loadavg before "
                f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")

    def save(self) -> None:
        import json

        self.out_path.write_text(json.dumps(self.report, ensure_ascii=False, indent=2, default=str))

    def keep_logs(self, sysm: System) -> None:
        """Asterisk's console log and gateway.log next to the JSON (the state dir is removed)."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for src, name in ((sysm.console_log, "asterisk.console.log"), (sysm.log_path, "gateway.log")):
            if src.exists():
                shutil.copy(src, self.logs_dir / name)

    def guard(self):
        import contextlib
        from datetime import datetime, timezone

        @contextlib.contextmanager
        def guarded():
            try:
                yield
            except KeyboardInterrupt:
                self.say("interrupted: everything started here has been stopped")
                self.report["interrupted"] = True
                self.rc = 130
            except Exception as exc:  # noqa: BLE001 - everything is torn down by now; report what we have
                import traceback

                traceback.print_exc()
                self.report["error"] = f"{type(exc).__name__}: {exc}"
                self.say(f"failed: {self.report['error'][:2000]}")
                self.rc = 1
            finally:
                self.report["loadavg_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
                self.report["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                self.save()

        return guarded()

    def fail(self, title: str, problems: list[str], rc: int, key: str) -> None:
        """Print ``problems`` under ``title``, note them in the JSON and set the exit code (the first one wins)."""
        if not problems:
            return
        print(f"\n{title}")
        for p in problems:
            print(f"  - {p}")
        self.report[key] = problems
        self.save()
        self.rc = self.rc or rc

    def finish(self) -> int:
        from gateway_dev.system import ROOT

        if self.report.get("error"):
            print(f"\nFAILED: {self.report['error'][:500]}")
        print(f"\nJSON: {self.out_path.relative_to(ROOT)}")
        return self.rc


def system_options(ap, agents: int) -> None:
    """The options every bench with its own system has: its agents, speech, its state dir."""
    ap.add_argument("--agents", type=int, default=agents, help=f"simulated agents answering q-consult ({agents})")
    ap.add_argument("--no-speech", action="store_true", help="GATEWAY_SPEECH=off (no recogniser)")
    ap.add_argument("--keep-state", action="store_true", help="keep the temporary state dir")
    ap.add_argument("--log-level", default="WARNING", help="the gateway's GATEWAY_LOG_LEVEL (WARNING)")


def needs_root() -> bool:
    """True (and says so) when not root: the sandbox needs debootstrap, unshare and chroot."""
    if os.geteuid() != 0:
        import sys

        print("the sandbox needs root (debootstrap, unshare, chroot)", file=sys.stderr)
        return True
    return False


def sigterm_as_interrupt() -> None:
    """SIGTERM takes the same clean teardown as Ctrl-C."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
