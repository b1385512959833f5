"""Figures for the agent desk: how fast a screen pop reaches the desk, how fast a desk reconnects.

    .venv/bin/python bench/desk.py [--rounds 3] [--batch 20] [--reconnects 50]
                                   [--browser-calls 3 | --no-browser] [--keep-state]

It prints figures and never asserts speed. Everything runs in a private sandbox Asterisk +
``gateway serve`` (gateway_dev.system.System: its own state dir and free ports).

1. Screen pop latency with 20 desks connected. The private copy of config/ gets 20 agents
   (9001..9020) and they become the only members of q-help (求助), so callers dialling
   12345 and pressing 5 (求助) then 2 (不保密) reach them. 20 agent users are tied to
   9001..9020 and each opens the desk WebSocket (/api/desk/ws). This process listens to
   AMI itself and notes when each ``AgentConnect`` arrives (time.monotonic); each desk notes
   when its ``screen_pop`` arrives. Latency = pop arrival - AgentConnect arrival, per call.
   ``--rounds`` batches of ``--batch`` calls, each batch placed all at once.
   With a browser (Debian's /usr/bin/chromium driven by Playwright), a few calls to q-suggest
   (agent 8002) are also timed until the popped ticket is in the page's DOM.
2. WebSocket reconnection: one desk closes and reconnects with ``?since=<last seq>`` and times
   the hello and the replay; nothing missed, one pop replayed, and pops really missed while
   away (a batch of calls placed while all 20 desks are closed), plus 20 desks at once.

Output: a table on stdout, progress on stderr, JSON in bench/results/desk.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp

from common import add_queue_agents
from gateway_dev.simcall import CallScript, place_call, sim_ami_client
from gateway_dev.system import GATEWAY, ROOT, System, say_zh

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
AGENTS = [str(9001 + i) for i in range(20)]
BENCH_QUEUE = "q-help"  # type menu key 5 (求助) in config/flows/main.yaml
DIGITS = "52"  # 求助, then 不保密
BROWSER_AGENT = "8002"  # the only member of q-suggest: calls with keys 2, 2 pop on its desk
BROWSER_DIGITS = "22"
PASSWORD = "bench desk password 12345"
SPEECH_TEXT = "我家楼道的灯坏了一个星期，晚上看不见路，请帮忙找人来修一下。"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]

# Runs in the desk page before its own scripts: notes (Date.now(), the machine's wall clock)
# when a screen_pop message arrives on the page's WebSocket, and when the ticket appears in the
# open list (#open-list li[data-ticket-id]) and in the detail pane, plus the next animation frame.
PAGE_PROBE = """
(() => {
  window.__bench = {ws: [], dom: []};
  const Orig = window.WebSocket;
  window.WebSocket = class extends Orig {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (ev) => {
        const t = Date.now();
        try {
          const m = JSON.parse(ev.data);
          if (m.type === "screen_pop") window.__bench.ws.push({uniqueid: m.uniqueid, id: m.ticket && m.ticket.id, t});
        } catch (e) {}
      });
    }
  };
  const seen = new Set();
  const scan = () => {
    const t = Date.now();
    const where_sel = [["list", "#open-list li[data-ticket-id]"], ["detail", "#detail .ticket[data-ticket-id]"]];
    for (const [where, sel] of where_sel) {
      for (const node of document.querySelectorAll(sel)) {
        const key = where + ":" + node.dataset.ticketId;
        if (seen.has(key)) continue;
        seen.add(key);
        const rec = {where, id: Number(node.dataset.ticketId), inserted: t, frame: null};
        window.__bench.dom.push(rec);
        requestAnimationFrame(() => { rec.frame = Date.now(); });
      }
    }
  };
  const watch = () => { new MutationObserver(scan).observe(document.body, {subtree: true, childList: true}); scan(); };
  if (document.body) watch(); else document.addEventListener("DOMContentLoaded", watch);
})();
"""


def say(msg: str) -> None:
    print(f"[desk {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _sigterm(signum, frame):  # the same clean teardown as Ctrl-C
    raise KeyboardInterrupt


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p99 of fewer than 100 values is the maximum)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict:
    """median / p99 / min / max in ms (values in seconds)."""
    ms = [v * 1000 for v in values]
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "median": round(statistics.median(ms), 1), "p99": round(pct(ms, 99), 1),
            "min": round(min(ms), 1), "max": round(max(ms), 1)}


def fmt(s: dict) -> str:
    if not s.get("n"):
        return "-"
    return f"{s['median']:.1f} / {s['p99']:.1f}  (min {s['min']:.1f}, max {s['max']:.1f}, n={s['n']})"


# -- setting up --------------------------------------------------------------------------------
def private_config(sysm: System) -> str:
    """20 bench agents, and q-help answered by them only; checked with `gateway config check`."""
    return add_queue_agents(sysm, BENCH_QUEUE, AGENTS, "bench/desk.py: 20 bench agents answer q-help")


async def add_users(sysm: System, users: dict[str, str]) -> None:
    """``gateway user add NAME --role agent --agent ID --password-stdin``, a few at a time."""
    gate = asyncio.Semaphore(3)

    async def add(name: str, agent: str) -> None:
        async with gate:
            for attempt in range(3):
                proc = await asyncio.create_subprocess_exec(
                    *GATEWAY, "user", "add", name, "--role", "agent", "--agent", agent, "--password-stdin",
                    env=sysm.env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                _, err = await proc.communicate((PASSWORD + "\n").encode())
                if proc.returncode == 0:
                    return
                if b"exists" in err:
                    await asyncio.to_thread(sysm.cli, "user", "agent", name, agent)
                    return
                await asyncio.sleep(1 + attempt)
            raise RuntimeError(f"gateway user add {name} failed: {err.decode()[-1000:]}")

    await asyncio.gather(*(add(name, agent) for name, agent in users.items()))


async def login(session: aiohttp.ClientSession, base: str, username: str) -> str:
    async with session.post(f"{base}/api/login", json={"username": username, "password": PASSWORD}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"login {username}: {resp.status} {await resp.text()}")
        morsel = resp.cookies.get("gw_session")
        if morsel is None or not morsel.value:
            raise RuntimeError(f"login {username} gave no session cookie")
        return morsel.value


def speech_file(directory: Path) -> Path:
    """The callers' description in the project's own Mandarin caller voice (Kokoro). espeak-ng's
    Mandarin was heard as nonsense ("祸，温柔"), and nonsense can set off the emergency guard:
    those calls went to q-emergency and the figures measured that path."""
    return say_zh(SPEECH_TEXT, directory / "bench-desk-caller.wav")


# -- desks -------------------------------------------------------------------------------------
class Desk:
    """One agent's desk WebSocket, noting when each message arrives."""

    def __init__(self, bench: "Bench", username: str, agent_id: str, token: str) -> None:
        self.bench, self.username, self.agent_id, self.token = bench, username, agent_id, token
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task | None = None
        self.last_seq = 0
        self.pop_seqs: list[int] = []

    async def open(self, since: int | None = None) -> dict:
        """Connect with ?since=N; times the upgrade, the hello and the end of the replay (seconds)."""
        since = self.last_seq if since is None else since
        url = f"{self.bench.base}/api/desk/ws?since={since}"
        started = time.monotonic()
        ws = await self.bench.session.ws_connect(url, headers={"Authorization": f"Bearer {self.token}"},
                                                 autoping=True)
        upgraded = time.monotonic()
        msg = await ws.receive(timeout=10)
        hello_at = time.monotonic()
        hello = json.loads(msg.data)
        if hello.get("type") != "hello":
            raise RuntimeError(f"{self.username}: expected hello, got {hello}")
        replayed: list[dict] = []
        # the hello says the user's last event number: the replay ends with that one
        while hello["last_seq"] > since and not (replayed and int(replayed[-1].get("seq", 0)) >= hello["last_seq"]):
            msg = await ws.receive(timeout=10)
            arrived = time.monotonic()
            event = json.loads(msg.data)
            replayed.append(event)
            self.bench.on_desk_event(self, event, arrived, time.time(), len(msg.data), replay=True)
        done = time.monotonic()
        self.ws = ws
        self.last_seq = max(self.last_seq, int(hello["last_seq"]))
        self.reader = asyncio.create_task(self._read(ws))
        return {"upgrade": upgraded - started, "hello": hello_at - started, "replay_done": done - started,
                "replayed": len(replayed), "replayed_types": [e.get("type") for e in replayed]}

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            arrived, wall = time.monotonic(), time.time()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            self.bench.on_desk_event(self, event, arrived, wall, len(msg.data), replay=False)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        self.ws = self.reader = None


class Bench:
    def __init__(self, sysm: System, session: aiohttp.ClientSession,
                 callers: concurrent.futures.Executor) -> None:
        self.sysm = sysm
        self.session = session
        self.callers = callers
        self.lag = LagMonitor()
        self.base = f"http://127.0.0.1:{sysm.http_port}"
        self.connects: dict[str, dict] = {}  # uniqueid -> AgentConnect as seen on AMI
        self.pops: dict[str, dict] = {}  # uniqueid -> the first screen_pop's arrival (live, not replayed)
        self.replays: dict[str, dict] = {}  # uniqueid -> a screen_pop received in a replay
        self.other_events: list[dict] = []
        self.mismatched: list[dict] = []

    def on_ami(self, h: dict) -> None:
        if h.get("Event") == "AgentConnect":
            mono, wall = time.monotonic(), time.time()
            uid = h.get("Uniqueid", "")
            self.connects.setdefault(uid, {"mono": mono, "wall": wall, "queue": h.get("Queue"),
                                           "interface": h.get("Interface"), "member": h.get("MemberName")})

    def on_desk_event(self, desk: Desk, event: dict, mono: float, wall: float, size: int, *, replay: bool) -> None:
        seq = int(event.get("seq") or 0)
        desk.last_seq = max(desk.last_seq, seq)
        if event.get("type") != "screen_pop":
            self.other_events.append({"user": desk.username, "type": event.get("type"), "replay": replay,
                                      "uniqueid": event.get("uniqueid"), "seq": seq})
            return
        desk.pop_seqs.append(seq)
        uid = event.get("uniqueid", "")
        record = {"mono": mono, "wall": wall, "bytes": size, "user": desk.username, "agent": desk.agent_id,
                  "seq": seq, "at": event.get("at"), "ticket_id": (event.get("ticket") or {}).get("id"),
                  "queue": event.get("queue")}
        (self.replays if replay else self.pops).setdefault(uid, record)


def server_at(iso: str | None) -> float | None:
    """The pop's ``at`` (the gateway's wall clock when it had the ticket, before suggestions)."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


# -- the simulated callers, in a process of their own ----------------------------------------------
def calls_worker(env: dict, scripts: list[CallScript], delays: list[float]) -> tuple[list, float]:
    """Place the calls (own event loop, own AMI connection); results, or the error as a string.

    Runs in a separate process so that the callers' work (e.g. reading each call back from
    the database when it ends) never delays this process's AMI and WebSocket reads, whose
    arrival times are the figures.
    """
    from gateway.settings import load_settings

    async def go() -> tuple[list, float]:
        settings = load_settings(env)
        ami = sim_ami_client(settings)
        await ami.start()
        try:
            if not await ami.wait_connected(10):
                raise RuntimeError(f"AMI not reachable: {ami.last_error}")

            async def one(script: CallScript, delay: float):
                await asyncio.sleep(delay)
                return await place_call(settings, script, ami=ami)

            started = time.monotonic()
            results = await asyncio.gather(*(one(s, d) for s, d in zip(scripts, delays)), return_exceptions=True)
            return [r if isinstance(r, dict) else repr(r) for r in results], time.monotonic() - started
        finally:
            await ami.close()

    return asyncio.run(go())


async def place_calls(bench: "Bench", scripts: list[CallScript],
                      delays: list[float] | None = None) -> tuple[list, float]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(bench.callers, calls_worker, bench.sysm.env, scripts,
                                      delays or [0.0] * len(scripts))


class LagMonitor:
    """How late this process's event loop wakes up (a late loop would delay the arrival stamps)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - t - 0.01)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return round(worst * 1000, 1)


# -- 1. screen pops ---------------------------------------------------------------------------------
CALLERS = iter(range(10**8))  # every call its own caller number (no repeat-caller history)


async def run_batch(bench: Bench, speech: Path, label: str, size: int, *, wait_pops: bool = True) -> dict:
    tag = uuid.uuid4().hex[:6]
    scripts = [CallScript(number="12345", caller=f"139{next(CALLERS):08d}", digits=DIGITS,
                          say=speech, timeout=420, uniqueid=f"bd-{label}-{tag}-{i:02d}") for i in range(size)]
    bench.lag.take()
    results, wall = await place_calls(bench, scripts)
    uids = [s.uniqueid for s in scripts]
    # pops normally come while the agent talks (1 s); give stragglers a moment
    deadline = time.monotonic() + (10 if wait_pops else 0)
    while time.monotonic() < deadline and any(u in bench.connects and u not in bench.pops for u in uids):
        await asyncio.sleep(0.1)
    return {"label": label, "uids": uids, "results": results, "wall_s": wall, "loop_lag_ms": bench.lag.take()}


def batch_figures(bench: Bench, batch: dict) -> dict:
    uids = batch["uids"]
    results = batch["results"]
    errors = [r for r in results if isinstance(r, str)]
    connected = [u for u in uids if u in bench.connects]
    latencies, server_side, wrong_agent, sizes, samples = [], [], [], [], []
    first = min((bench.connects[u]["mono"] for u in connected), default=0.0)
    for u in sorted(connected, key=lambda u: bench.connects[u]["mono"]):
        pop = bench.pops.get(u)
        if pop is None:
            continue
        ac = bench.connects[u]
        latencies.append(pop["mono"] - ac["mono"])
        sizes.append(pop["bytes"])
        at = server_at(pop["at"])
        if at is not None:
            server_side.append(at - ac["wall"])
        # [AgentConnect s after the batch's first, latency ms, of which until the gateway had the ticket ms]
        samples.append([round(ac["mono"] - first, 3), round((pop["mono"] - ac["mono"]) * 1000, 1),
                        round((at - ac["wall"]) * 1000, 1) if at is not None else None])
        member = (ac.get("interface") or "").split("@", 1)[0].rsplit("/", 1)[-1]
        if member != pop["agent"]:
            wrong_agent.append({"uniqueid": u, "answered_by": member, "popped_at": pop["agent"]})
    spread = [bench.connects[u]["mono"] for u in connected]
    ok = [r for r in results if isinstance(r, dict)]
    return {
        "calls": len(uids),
        "connected": len(connected),
        "pops": sum(1 for u in connected if u in bench.pops),
        "tickets": sum(1 for r in ok if r.get("ticket_id")),
        "queues": sorted({r.get("queue") for r in ok if r.get("queue")}),
        "hangup_causes": sorted({r.get("hangup_cause") for r in ok}, key=str),
        "agentconnect_spread_s": round(max(spread) - min(spread), 2) if spread else None,
        "wall_s": round(batch["wall_s"], 1),
        "measuring_loop_max_lag_ms": batch["loop_lag_ms"],
        "latency_ms": summary(latencies),
        "agentconnect_to_pop_at_ms": summary(server_side),
        "pop_bytes_median": int(statistics.median(sizes)) if sizes else None,
        "wrong_agent": wrong_agent,
        "samples": samples,
        "errors": errors[:5],
        "_latencies": latencies, "_server": server_side,
    }


# -- 2. reconnects -------------------------------------------------------------------------------------
async def reconnect_loop(desk: Desk, count: int, *, back: int) -> dict:
    """Close and reopen ``count`` times with since = last seq - ``back`` (back=1: one pop replayed)."""
    hello, replay, upgrade, replayed = [], [], [], []
    last = max(desk.pop_seqs) if desk.pop_seqs else desk.last_seq
    for _ in range(count):
        await desk.close()
        t = await desk.open(since=max(0, last - back) if back else desk.last_seq)
        hello.append(t["hello"])
        upgrade.append(t["upgrade"])
        replay.append(t["replay_done"])
        replayed.append(t["replayed"])
        await asyncio.sleep(0.1)
    return {"reconnects": count, "since": f"last seq - {back}" if back else "last seq",
            "replayed_per_reconnect": sorted(set(replayed)), "upgrade_ms": summary(upgrade),
            "hello_ms": summary(hello), "replay_done_ms": summary(replay)}


async def missed_round(bench: Bench, desks: list[Desk], speech: Path, size: int) -> dict:
    """All desks away while a batch of calls pops; then each reconnects (one after another), then all at once."""
    before = {d.username: d.last_seq for d in desks}
    for d in desks:
        await d.close()
    say(f"missed round: {size} calls while all {len(desks)} desks are closed")
    batch = await run_batch(bench, speech, "missed", size, wait_pops=False)
    connected = [u for u in batch["uids"] if u in bench.connects]
    await asyncio.sleep(2)  # the pops are published at AgentConnect; the calls have ended by now
    hello, replay, counts, with_pop_hello, with_pop_replay = [], [], [], [], []
    for d in desks:
        t = await d.open(since=before[d.username])
        hello.append(t["hello"])
        replay.append(t["replay_done"])
        counts.append(t["replayed"])
        if t["replayed"]:
            with_pop_hello.append(t["hello"])
            with_pop_replay.append(t["replay_done"])
        await asyncio.sleep(0.1)
    replayed_pops = sum(1 for u in connected if u in bench.replays)
    live_pops = sum(1 for u in connected if u in bench.pops)
    # all desks at once (e.g. after the network came back), nothing missed this time
    for d in desks:
        await d.close()
    started = time.monotonic()
    herd = await asyncio.gather(*(d.open() for d in desks))
    herd_all = time.monotonic() - started
    figures = batch_figures(bench, batch)
    return {
        "calls": size, "connected": len(connected), "pops_replayed": replayed_pops,
        "pops_received_live_by_mistake": live_pops,
        "replayed_per_desk": {str(k): counts.count(k) for k in sorted(set(counts))},
        "desks_with_missed_pops": {"hello_ms": summary(with_pop_hello), "replay_done_ms": summary(with_pop_replay)},
        "all_desks": {"hello_ms": summary(hello), "replay_done_ms": summary(replay)},
        "herd_20_at_once": {"hello_ms": summary([h["hello"] for h in herd]),
                            "all_hellos_ms": round(herd_all * 1000, 1)},
        "calls_detail": {k: v for k, v in figures.items() if k in ("tickets", "queues", "hangup_causes", "errors")},
    }


# -- 1b. a real browser -----------------------------------------------------------------------------
async def browser_phase(bench: Bench, speech: Path, calls: int) -> dict:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        return {"skipped": "playwright is not installed (pip install playwright; no browser download)"}
    if not Path(CHROMIUM).exists():
        return {"skipped": f"no {CHROMIUM}"}
    username = "bench-browser"
    await add_users(bench.sysm, {username: BROWSER_AGENT})
    out: dict = {"agent": BROWSER_AGENT, "queue": "q-suggest", "calls": calls}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=bench.base,
                                                locale="zh-CN", timezone_id="Asia/Shanghai")
            await context.add_init_script(PAGE_PROBE)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto("/desk")
            await page.fill("#username", username)
            await page.fill("#password", PASSWORD)
            await page.get_by_role("button", name="登录").click()
            await page.wait_for_selector('body[data-ready="true"]', timeout=30_000)
            await page.wait_for_selector('#conn[data-state="open"]', timeout=30_000)
            probe = await page.evaluate("typeof window.__bench")
            if probe != "object":
                return {**out, "skipped": "the page probe did not load (CSP?)"}
            say(f"browser: {calls} calls to q-suggest, 8 s apart, popping on {username}'s page")

            scripts = [CallScript(number="12345", caller=f"137{next(CALLERS):08d}", digits=BROWSER_DIGITS,
                                  say=speech, timeout=420, uniqueid=f"bd-browser-{uuid.uuid4().hex[:8]}-{i}")
                       for i in range(calls)]
            results, _ = await place_calls(bench, scripts, [8.0 * i for i in range(calls)])
            await asyncio.sleep(2)
            seen = await page.evaluate("window.__bench")
            out["page_errors"] = errors[:5]
        finally:
            await browser.close()
    ws_at = {m["id"]: m["t"] / 1000 for m in seen["ws"] if m.get("id")}
    dom = {(d["where"], d["id"]): d for d in seen["dom"]}
    rows, to_ws, to_list, to_detail, to_frame = [], [], [], [], []
    for r in results:
        if isinstance(r, str) or not r.get("ticket_id"):
            rows.append({"error": r if isinstance(r, str) else "no ticket"})
            continue
        ac = bench.connects.get(r["uniqueid"])
        tid = r["ticket_id"]
        row = {"uniqueid": r["uniqueid"], "ticket_id": tid, "agent": r.get("agent")}
        if ac:
            if tid in ws_at:
                row["ws_ms"] = round((ws_at[tid] - ac["wall"]) * 1000, 1)
                to_ws.append(ws_at[tid] - ac["wall"])
            for where, bucket in (("list", to_list), ("detail", to_detail)):
                d = dom.get((where, tid))
                if d:
                    row[f"{where}_ms"] = round((d["inserted"] / 1000 - ac["wall"]) * 1000, 1)
                    bucket.append(d["inserted"] / 1000 - ac["wall"])
                    if where == "detail" and d.get("frame"):
                        row["frame_ms"] = round((d["frame"] / 1000 - ac["wall"]) * 1000, 1)
                        to_frame.append(d["frame"] / 1000 - ac["wall"])
        rows.append(row)
    out.update({"rows": rows, "ws_message_ms": summary(to_ws), "in_open_list_ms": summary(to_list),
                "in_detail_ms": summary(to_detail), "next_frame_ms": summary(to_frame)})
    return out


# -- the run -------------------------------------------------------------------------------------------
async def run(args, sysm: System) -> dict:
    out: dict = {"when": datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
                 "cpus": os.cpu_count(), "args": vars(args)}
    out["config_check"] = private_config(sysm)
    say(f"config: {out['config_check']}")
    say("starting the sandbox Asterisk and the gateway")
    out["startup_s"] = {k: round(v, 1) for k, v in sysm.up().items()}
    speech = speech_file(sysm.state)
    users = {f"bench-desk-{a}": a for a in AGENTS}
    say(f"creating {len(users)} agent users")
    await add_users(sysm, users)
    s = sysm.settings
    ami = sim_ami_client(s)
    callers = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        await ami.start()
        if not await ami.wait_connected(10):
            raise RuntimeError(f"AMI not reachable: {ami.last_error}")
        async with aiohttp.ClientSession() as session:
            bench = Bench(sysm, session, callers)
            await asyncio.get_running_loop().run_in_executor(callers, int)  # start the callers' process now
            bench.lag.start()
            ami.subscribe_raw(bench.on_ami)
            desks = [Desk(bench, name, agent, await login(session, bench.base, name))
                     for name, agent in users.items()]
            opens = [await d.open() for d in desks]
            out["desks"] = len(desks)
            out["first_open_hello_ms"] = summary([o["hello"] for o in opens])
            say(f"{len(desks)} desks connected")

            # 1. pops with 20 desks connected
            rounds, all_lat, all_server = [], [], []
            for r in range(args.rounds):
                say(f"round {r + 1}/{args.rounds}: {args.batch} calls at once (12345, keys {DIGITS} -> {BENCH_QUEUE})")
                batch = await run_batch(bench, speech, f"r{r + 1}", args.batch)
                fig = batch_figures(bench, batch)
                all_lat += fig.pop("_latencies")
                all_server += fig.pop("_server")
                rounds.append(fig)
                say(f"  connected {fig['connected']}/{fig['calls']}, pops {fig['pops']}, "
                    f"latency median/p99 {fmt(fig['latency_ms'])} ms, AgentConnects within "
                    f"{fig['agentconnect_spread_s']} s, batch {fig['wall_s']} s, "
                    f"measuring loop late by at most {fig['measuring_loop_max_lag_ms']} ms")
            out["pop"] = {"rounds": rounds, "latency_ms": summary(all_lat),
                          "agentconnect_to_pop_at_ms": summary(all_server),
                          "calls": sum(f["calls"] for f in rounds), "connected": sum(f["connected"] for f in rounds),
                          "pops": sum(f["pops"] for f in rounds), "tickets": sum(f["tickets"] for f in rounds)}

            # 2. reconnects (the system idle)
            desk = max(desks, key=lambda d: (len(d.pop_seqs), d.username))
            say(f"reconnects of {desk.username}: {args.reconnects} with nothing missed, "
                f"{args.reconnects} with one pop replayed")
            out["reconnect"] = {"desk": desk.username,
                                "nothing_missed": await reconnect_loop(desk, args.reconnects, back=0),
                                "one_pop_replayed": await reconnect_loop(desk, args.reconnects, back=1)
                                if desk.pop_seqs else {"skipped": "the desk had no pop"}}
            out["reconnect"]["missed_while_away"] = await missed_round(bench, desks, speech, args.batch)
            out["other_desk_events"] = bench.other_events[:20]

            # 1b. a real browser page
            if args.browser_calls and not args.no_browser:
                out["browser"] = await browser_phase(bench, speech, args.browser_calls)
            for d in desks:
                await d.close()
            bench.lag.task.cancel()
        status, metrics = sysm.http("/metrics?format=json", token=sysm.token())
        if status == 200:
            out["gateway_desk_counters"] = metrics.get("desk")
    except BaseException:
        for proc in list(getattr(callers, "_processes", {}).values()):  # a batch may still run: stop it
            proc.terminate()
        raise
    finally:
        callers.shutdown(wait=True, cancel_futures=True)
        await ami.close()
    return out


def table(out: dict) -> str:
    lines = ["", f"agent desk figures ({out['when']}, {out['cpus']} CPUs)", ""]
    pop = out.get("pop", {})
    lines.append("1. AgentConnect (AMI, this process) -> screen_pop on the desk WebSocket, 20 desks connected")
    lines.append("   round  calls connected pops  AC spread s  loop lag ms   latency ms median / p99 (min, max)")
    for i, r in enumerate(pop.get("rounds", []), 1):
        lines.append(f"   {i:>5}  {r['calls']:>5} {r['connected']:>9} {r['pops']:>4}"
                     f"  {r['agentconnect_spread_s']!s:>11}"
                     f"  {r['measuring_loop_max_lag_ms']!s:>11}   {fmt(r['latency_ms'])}")
    if pop:
        lines.append(f"   all: pops {pop['pops']} / connected {pop['connected']} / calls {pop['calls']}; "
                     f"latency ms {fmt(pop['latency_ms'])}")
        lines.append(f"   of which AgentConnect -> the gateway had the ticket (pop 'at', wall clock): "
                     f"{fmt(pop['agentconnect_to_pop_at_ms'])}")
    b = out.get("browser")
    if b:
        lines.append("")
        if b.get("skipped"):
            lines.append(f"1b. browser: skipped ({b['skipped']})")
        else:
            lines.append(f"1b. browser (chromium, one desk page, {b['calls']} calls to {b['queue']}): AgentConnect ->")
            lines.append(f"   WebSocket message in the page  {fmt(b['ws_message_ms'])}")
            lines.append(f"   ticket in the open list (DOM)   {fmt(b['in_open_list_ms'])}")
            lines.append(f"   ticket opened in the detail     {fmt(b['in_detail_ms'])}")
            lines.append(f"   next animation frame           {fmt(b['next_frame_ms'])}")
    rc = out.get("reconnect")
    if rc:
        lines.append("")
        lines.append(f"2. reconnect ({rc['desk']}): connect -> hello / -> end of replay, ms median / p99")
        for key in ("nothing_missed", "one_pop_replayed"):
            r = rc[key]
            if r.get("skipped"):
                lines.append(f"   {key}: skipped ({r['skipped']})")
                continue
            lines.append(f"   {key:<18} ({r['reconnects']}x, since={r['since']}) hello {fmt(r['hello_ms'])}")
            lines.append(f"   {'':<18} replay done {fmt(r['replay_done_ms'])}")
        m = rc.get("missed_while_away")
        if m:
            lines.append(f"   missed while away: {m['calls']} calls, {m['connected']} connected, "
                         f"{m['pops_replayed']} pops replayed (per desk: {m['replayed_per_desk']})")
            lines.append(f"     desks with missed pops: hello {fmt(m['desks_with_missed_pops']['hello_ms'])}")
            lines.append(f"{'':29}replay done {fmt(m['desks_with_missed_pops']['replay_done_ms'])}")
            lines.append(f"     20 desks at once: hello {fmt(m['herd_20_at_once']['hello_ms'])}; "
                         f"all 20 hellos in {m['herd_20_at_once']['all_hellos_ms']} ms")
    return "\n".join(lines)


def off_path(out: dict) -> list[str]:
    """Why the figures do not measure the intended calls (keys to BENCH_QUEUE, pops on the
    answering agents' desks, the browser page popping its own calls)."""
    problems = []
    pop = out.get("pop") or {}
    for i, r in enumerate(pop.get("rounds", []), 1):
        if r.get("queues") != [BENCH_QUEUE]:
            problems.append(f"round {i}: calls went to {r.get('queues')}, meant {BENCH_QUEUE}")
        if r["connected"] < r["calls"] or r["pops"] < r["connected"]:
            problems.append(f"round {i}: {r['calls']} calls, {r['connected']} answered, {r['pops']} pops")
    missed = (out.get("reconnect") or {}).get("missed_while_away") or {}
    if missed and missed.get("calls_detail", {}).get("queues") != [BENCH_QUEUE]:
        problems.append(f"missed round: calls went to {missed['calls_detail'].get('queues')}")
    browser = out.get("browser") or {}
    if browser and "skipped" not in browser:
        got = browser.get("in_open_list_ms", {}).get("n", 0)
        if got < browser["calls"]:
            problems.append(f"browser: {got} of {browser['calls']} calls reached the page's open list")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="batches of calls with 20 desks connected (3)")
    parser.add_argument("--batch", type=int, default=20, help="calls placed at once per batch (20)")
    parser.add_argument("--reconnects", type=int, default=50, help="reconnects per kind (50)")
    parser.add_argument("--browser-calls", type=int, default=3, help="calls timed in a real browser page (3)")
    parser.add_argument("--no-browser", action="store_true", help="skip the browser part")
    parser.add_argument("--keep-state", action="store_true", help="keep the temporary state dir (logs, database)")
    parser.add_argument("--output", type=Path, default=RESULTS / "desk.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.monotonic()
    with System(prefix="gw-bench-desk-", keep=args.keep_state) as sysm:
        if args.keep_state:
            say(f"state dir kept: {sysm.state}")
        out = asyncio.run(run(args, sysm))
    out["bench_s"] = round(time.monotonic() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    out["args"] = {k: str(v) for k, v in out["args"].items()}
    args.output.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    problems = off_path(out)
    if problems:
        out["off_path"] = problems
        args.output.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(table(out))
    print(f"\nwritten to {args.output}")
    if problems:
        print("\nOFF PATH: these figures do not measure the intended calls:")
        for problem in problems:
            print(f"  - {problem}")
        sys.exit(2)


if __name__ == "__main__":
    main()
