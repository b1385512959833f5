"""Render Asterisk's whole configuration from ``config/`` and the settings.

Nothing for a line is hand-written: each line number gets its inbound
context (``did-<number>``), each queue its ``queues.conf`` section, each
agent a Local-channel member, and the simulated caller its own contexts.
Files are written to ``<instance>/etc`` and replaced atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.ivr_flows.model import GatewayConfig, TransferNode
from gateway.settings import PBX_INSTANCE_DIR, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, Settings, read_sim_ami_secret

MODULES = (
    "res_timing_timerfd", "res_speech", "res_agi", "res_musiconhold", "res_pjproject", "res_sorcery_astdb",
    "res_sorcery_config", "res_sorcery_memory", "res_pjsip", "res_pjsip_session", "res_pjsip_authenticator_digest",
    "res_pjsip_endpoint_identifier_ip", "res_pjsip_endpoint_identifier_user", "res_pjsip_sdp_rtp",
    "res_pjsip_dtmf_info", "res_pjsip_pubsub", "res_pjsip_nat", "res_pjsip_rfc3326", "res_pjsip_caller_id", "res_pjsip_logger", "res_rtp_asterisk", "res_audiosocket",
    "chan_pjsip", "chan_audiosocket", "pbx_config", "app_queue", "app_playback", "app_dial", "app_senddtmf",
    "app_record", "app_stack", "app_verbose", "app_audiosocket", "app_echo", "app_exec", "app_read",
    "func_channel", "func_callerid", "func_logic", "func_strings", "bridge_simple", "bridge_softmix",
    "bridge_builtin_features", "bridge_native_rtp", "format_wav", "format_pcm", "format_sln", "codec_ulaw",
    "codec_alaw", "codec_resample", "res_manager_devicestate",
    "func_cdr", "res_cdrel_custom", "cdr_custom",  # CDRs for the gateway's reconciliation
)

STUBS = ("acl", "cel", "ccss", "features", "udptl", "stasis", "queuerules", "musiconhold", "pjproject",
         "sorcery", "res_parking", "cli")


def _asterisk_conf() -> str:
    d = PBX_INSTANCE_DIR
    return f"""[directories]
astetcdir => {d}/etc
astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules
astvarlibdir => /var/lib/asterisk
astdbdir => {d}/db
astkeydir => /var/lib/asterisk
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => {d}/spool
astrundir => {d}/run
astlogdir => {d}/log
astsbindir => /usr/sbin

[options]
verbose = 0
maxcalls = 2000
"""


# What each AMI user may do, by Asterisk 22's classes (checked in main/manager.c and
# apps/app_queue.c: an action runs when the user's write classes share one with the
# action's; an event is sent only when the read classes hold all of the event's).
# The gateway: events Hangup (call), QueueCallerJoin/QueueCallerAbandon/AgentConnect/
# AgentComplete (agent); actions Ping and QueueReload (no class needed) and
# Reload Module=pbx_config (system or config: system, since config would also allow
# UpdateConfig of any file, manager.conf included); Redirect (call: the desk's emergency
# transfer moves the caller's channel to gw-emergency-transfer); Originate (originate: the
# gateway's own calls to citizens, gateway.pbx.outbound, whose OriginateResponse is class call).
# No `command`.
GATEWAY_AMI_READ = ("call", "agent")
GATEWAY_AMI_WRITE = ("system", "call", "originate")
# The simulated caller (development sandbox only): Originate (originate); PlayDTMF, Setvar,
# Redirect, Hangup (call); events Newchannel/Hangup (call), AGIExecStart (agi), queue ones (agent).
SIM_AMI_READ = ("call", "agent", "agi")
SIM_AMI_WRITE = ("originate", "call")


def _manager_user(name: str, secret: str, read: tuple[str, ...], write: tuple[str, ...]) -> str:
    return f"""[{name}]
secret = {secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = {",".join(read)}
write = {",".join(write)}
writetimeout = 1000
"""


def _manager_conf(settings: Settings, sim_secret: str = "") -> str:
    out = f"""[general]
enabled = yes
port = {settings.ami_port}
bindaddr = 127.0.0.1
displayconnects = no

""" + _manager_user(settings.ami_user, settings.ami_secret, GATEWAY_AMI_READ, GATEWAY_AMI_WRITE)
    if sim_secret:
        out += "\n; The simulated caller (`gateway call`, tests, benchmarks): this sandbox only.\n"
        out += _manager_user(settings.sim_ami_user, sim_secret, SIM_AMI_READ, SIM_AMI_WRITE)
    return out


def _pjsip_conf(settings: Settings) -> str:
    host = settings.sip_host
    hostport = f"[{host}]:{settings.sip_port}" if ":" in host else f"{host}:{settings.sip_port}"
    return f"""; SIP for load tests and softphones on this machine only.
[transport-udp]
type = transport
protocol = udp
bind = {hostport}

; RTP binds to media_address (res_pjsip_sdp_rtp), not to every interface.
""" + _inbound_endpoint("sipp", settings.sip_host, max_contacts=10, match="127.0.0.1") + _proxy_endpoint(settings)


def _proxy_endpoint(settings: Settings) -> str:
    """The SIP proxy in front of the nodes (GATEWAY_SIP_PROXY, Kamailio): its calls enter [inbound].

    Matched by its address and source port; the media still flows between the caller and the
    node directly (the proxy only relays signalling, and record-routes itself)."""
    if settings.sip_proxy is None:
        return ""
    host, port = settings.sip_proxy
    match = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"""
; The SIP proxy (Kamailio's dispatcher) that spreads calls over the Asterisk nodes.
""" + _inbound_endpoint("proxy", settings.sip_host, max_contacts=1, match=match)


def _inbound_endpoint(name: str, media_host: str, *, max_contacts: int, match: str) -> str:
    """A PJSIP endpoint, aor and identify whose calls enter [inbound] (u-law, RFC 4733 keys)."""
    return f"""[{name}]
type = endpoint
transport = transport-udp
media_address = {media_host}
bind_rtp_to_media_address = yes
context = inbound
disallow = all
allow = ulaw
dtmf_mode = rfc4733
rtp_symmetric = yes
aors = {name}

[{name}]
type = aor
max_contacts = {max_contacts}

[{name}]
type = identify
endpoint = {name}
match = {match}
"""


def _node_options(settings: Settings) -> str:
    """asterisk.conf [options] of one node of several: its name makes its call ids unique
    (``pbx2-1764650000.12``), so two nodes never hand the gateway the same uniqueid."""
    return f"systemname = {settings.pbx_node}\n" if settings.pbx_node else ""


def _extensions_conf(config: GatewayConfig, settings: Settings) -> str:
    out = [
        "; Generated by `gateway render` from config/hotlines.yaml: do not edit.",
        "[globals]",
        f"GW_CONFIG_VERSION={config.version}",
        "GW_QUEUE_WAIT=120",
        "GW_CENTRAL_WAIT=120",
        "GW_AGENT_TALK=1",
        f"GW_FALLBACK_QUEUE={_fallback_queue(config)}",
        "",
        "; Every dialled number enters here (SIP, the simulator, trunks).",
        "[inbound]",
    ]
    for number in config.lines:
        out.append(f"exten => {number},1,Goto(did-{number},s,1)")
    out += [
        "exten => _X.,1,NoOp(gateway: no line for ${EXTEN})",
        " same => n,Hangup(1)",
        "",
        "; The IVR: the gateway's FastAGI decides everything; GW_ACTION tells what to do next.",
        "[gw-ivr]",
        "exten => s,1,Answer()",
        *_agi_attempts(settings.agi_addresses),
        *_failsafe(),
        " same => n(queue),Queue(${GW_QUEUE},,,,${GW_QUEUE_WAIT})",
        "; A sub-centre nobody answered in time: 12345 central takes the call (QUEUESTATUS says why).",
        ' same => n,GotoIf($["${GW_OVERFLOW_QUEUE}" = ""]?done)',
        ' same => n,GotoIf($["${QUEUESTATUS}" = "TIMEOUT" | "${QUEUESTATUS}" = "JOINEMPTY" | '
        '"${QUEUESTATUS}" = "LEAVEEMPTY" | "${QUEUESTATUS}" = "JOINUNAVAIL" | "${QUEUESTATUS}" = "LEAVEUNAVAIL"]'
        '?:done)',
        " same => n,Set(GW_QUEUE_WAIT=${GW_CENTRAL_WAIT})",
        " same => n,Queue(${GW_OVERFLOW_QUEUE},,,,${GW_QUEUE_WAIT})",
        " same => n(done),Hangup()",
        "",
    ]
    out += _outbound(settings)
    out += _emergency_transfers(config)
    for number, line in config.lines.items():
        out += [
            f"; {line.name} ({line.mode})",
            f"[did-{number}]",
            f"exten => s,1,Set(__GW_DID={number})",
            f" same => n,Gosub(gw-ivr,s,1({number}))",
            " same => n,Hangup()",
            "",
        ]
    out += [
        "; Simulated agents: queue members that answer by themselves.",
        "[gw-agents]",
        "exten => _XX.,1,Answer()",
        " same => n,Wait(${GW_AGENT_TALK})",
        " same => n,Hangup()",
        "",
        "; Simulated caller (`gateway call`): the ;2 half of a Local channel waits while",
        "; the caller script (driven over AMI) presses keys and plays speech into the call.",
        "; The caller sends silence while it listens (as a phone sends RTP), so the IVR's",
        "; silence detection works as on a real line; it gives up after 10 minutes.",
        "[gw-caller-sim]",
        "; GW_EARS (set by the caller script's Originate): record what this caller hears (tests).",
        'exten => s,1,ExecIf($["${GW_EARS}" != ""]?MixMonitor(${GW_EARS}))',
        " same => n,Answer()",
        " same => n,Set(GW_SIM_END=$[${EPOCH} + 600])",
        f" same => n(wait),Playback({PBX_INSTANCE_DIR}/prompts/sim/silence)",
        " same => n,GotoIf($[${EPOCH} < ${GW_SIM_END}]?wait)",
        " same => n,Hangup()",
        "[gw-caller-say]",
        "exten => s,1,Playback(${GW_SAY})",
        " same => n,Goto(gw-caller-sim,s,wait)",
        "",
        *_citizen_sim(),
    ]
    return "\n".join(out) + "\n"


FAILSAFE_NOTICE_KEY = "failsafe-notice"  # the prompt (gateway.pbx.prompts) the fail-safe plays
FAILSAFE_USERFIELD = "failsafe\\;queue=${GW_QUEUE}\\;path=${GW_CHOICE_PATH}\\;agi=${AGISTATUS}"


def _agi_attempts(addresses: tuple[str, ...], script: str = "ivr", args: str = "${ARG1}") -> list[str]:
    """FastAGI failover: each address in turn while the IVR has not started.

    ``AGISTATUS=FAILURE`` with ``GW_IVR`` unset means this gateway was not reached (connection
    refused): the next address is tried. Once a gateway has set ``GW_IVR`` (the flow started
    there) a lost gateway sends the caller to the fail-safe instead of restarting the menu on
    the next one: the caller would hear the greeting again, and the next gateway would refuse
    the session anyway (the call's row exists: a replayed call id). The fail-safe keeps the
    choices made so far (GW_CHOICE_*) and routes by them.
    """
    out = []
    for n, address in enumerate(addresses, 1):
        out += [f" same => n(agi{n}),AGI(agi://{address}/{script},{args})",
                ' same => n,GotoIf($["${GW_ACTION}" = "queue"]?queue)',
                ' same => n,GotoIf($["${GW_ACTION}" = "hangup"]?done)']
        if n < len(addresses):
            out += [' same => n,GotoIf($["${AGISTATUS}" != "FAILURE" | "${GW_IVR}" != ""]?failsafe)',
                    f" same => n,Log(WARNING,FastAGI {address} unreachable (AGISTATUS=${{AGISTATUS}}) - "
                    f"trying {addresses[n]})",  # no ';' in dialplan text: it starts a comment
                    f" same => n,Goto(agi{n + 1})"]
    return out


def _failsafe(userfield: str = FAILSAFE_USERFIELD) -> list[str]:
    """The fail-safe: the gateway is down or failed mid-call (no GW_ACTION after the last AGI).

    The caller hears a short notice (prompt ``failsafe-notice``), then waits with music on hold
    in the queue their choices so far lead to (``GW_CHOICE_QUEUE``, set by the gateway at each
    menu choice), else the fallback queue. What is known goes into the call's CDR, for
    reconciliation to create or complete the record, as ``CDR(userfield)``::

        failsafe;queue=<queue joined>;path=<GW_CHOICE_PATH, e.g. type_menu:4>confidential_menu:1>;agi=<AGISTATUS>

    (``agi`` is SUCCESS when a gateway closed the session mid-call, FAILURE when none was
    reached, HANGUP or NOTFOUND otherwise.) The channel also keeps ``GW_FAILSAFE=1``,
    ``GW_CHOICE_CATEGORY`` and ``GW_IVR`` (``started`` when a gateway ran the flow).
    """
    return [
        "; Fail-safe: the gateway is down or failed mid-call (AGISTATUS=${AGISTATUS}): a notice,",
        "; then the queue of the caller's choices so far (GW_CHOICE_QUEUE) or the fallback queue.",
        ' same => n(failsafe),Set(GW_QUEUE=${IF($["${GW_CHOICE_QUEUE}" = ""]?${GW_FALLBACK_QUEUE}:${GW_CHOICE_QUEUE})})',
        " same => n,Set(GW_FAILSAFE=1)",
        f" same => n,Set(CDR(userfield)={userfield})",
        " same => n,Log(WARNING,gateway fail-safe: call ${UNIQUEID} AGISTATUS=${AGISTATUS} "
        "ivr=${GW_IVR} path=${GW_CHOICE_PATH} -> ${GW_QUEUE})",
        f" same => n,Playback({PBX_INSTANCE_DIR}/prompts/{FAILSAFE_NOTICE_KEY})",
    ]


OUTBOUND_CONTEXT = "gw-outbound"
OUTBOUND_USERFIELD = "outbound\\;purpose=${GW_PURPOSE}\\;ref=${GW_REF}"
OUTBOUND_FAILSAFE_PURPOSES = ("callback",)  # no gateway: these still reach a person (the citizen asked)


def _outbound(settings: Settings) -> list[str]:
    """``[gw-outbound]``: the answered side of a call the gateway placed (gateway.pbx.outbound).

    The gateway's FastAGI runs it by purpose (``AGI(agi://<gateway>/outbound,<purpose>,<ref>)``,
    with the same failover over GATEWAY_AGI_PEERS as ``[gw-ivr]``), then ``GW_ACTION`` says what
    next: ``queue`` (``GW_QUEUE``; a callback may carry ``QUEUE_PRIO``) or ``hangup``. With no
    gateway reachable a callback (the citizen asked to be called: they must reach a person) hears
    the fail-safe notice and waits in the fallback queue; any other purpose hangs up (its
    caller retries later). ``CDR(userfield)`` starts with ``outbound``, so reconciliation never
    takes it for an inbound call: ``outbound;purpose=<p>;ref=<r>`` (``;failsafe=1;queue=<q>;
    agi=<AGISTATUS>`` added when the fail-safe took it).
    """
    purposes = " | ".join(f'"${{GW_PURPOSE}}" = "{p}"' for p in OUTBOUND_FAILSAFE_PURPOSES)
    return [
        "; Calls the gateway places (AMI Originate into here once answered): its FastAGI decides by purpose.",
        f"[{OUTBOUND_CONTEXT}]",
        f"exten => s,1,Set(CDR(userfield)={OUTBOUND_USERFIELD})",
        *_agi_attempts(settings.agi_addresses, "outbound", "${GW_PURPOSE},${GW_REF}"),
        " same => n,Log(WARNING,outbound call ${UNIQUEID} (${GW_PURPOSE}): no gateway took it (AGISTATUS=${AGISTATUS}))",
        f' same => n(failsafe),GotoIf($[{purposes}]?:done)',
        *(line.replace(" same => n(failsafe),", " same => n,") for line in _failsafe(
            f"{OUTBOUND_USERFIELD}\\;failsafe=1\\;queue=${{GW_QUEUE}}\\;agi=${{AGISTATUS}}")[2:]),
        " same => n(queue),Queue(${GW_QUEUE},,,,${GW_QUEUE_WAIT})",
        " same => n(done),Hangup()",
        "",
    ]


def _citizen_sim() -> list[str]:
    """``[gw-citizen-sim]``: the simulated citizen the gateway calls in the development sandbox.

    ``Local/<number>@gw-citizen-sim``: what happens is set per number by the test, as a global
    variable (AMI ``Setvar`` without a channel, gateway_dev.simcall.set_citizen):
    ``GW_CITIZEN_<digits>`` = ``answer`` (default: answers, then listens as [gw-caller-sim] does),
    ``noanswer`` (rings, never answers) or ``busy``; ``GW_CITIZEN_EARS_<digits>`` = a file to
    record what the citizen hears (MixMonitor, like the simulated caller's GW_EARS).
    """
    return [
        "; Simulated citizen (sandbox): the gateway's outbound calls land here; GW_CITIZEN_<number> decides.",
        "[gw-citizen-sim]",
        "exten => _X.,1,Set(GW_CIT=${FILTER(0-9,${EXTEN})})",
        " same => n,Set(GW_MODE=${GW_CITIZEN_${GW_CIT}})",
        ' same => n,GotoIf($["${GW_MODE}" = "busy"]?busy)',
        ' same => n,GotoIf($["${GW_MODE}" = "noanswer"]?noanswer)',
        " same => n,Set(GW_EARS=${GW_CITIZEN_EARS_${GW_CIT}})",
        ' same => n,ExecIf($["${GW_EARS}" != ""]?MixMonitor(${GW_EARS}))',
        " same => n,Answer()",
        " same => n,Set(GW_SIM_END=$[${EPOCH} + 600])",
        " same => n,Goto(gw-caller-sim,s,wait)",
        " same => n(busy),Busy(10)",
        " same => n,Hangup()",
        " same => n(noanswer),Ringing()",
        " same => n,Wait(60)",
        " same => n,Hangup()",
        "exten => _+X.,1,Goto(${EXTEN:1},1)",
        "",
    ]


MOH_DIR = "moh"  # under the instance dir: music on hold, generated at render time
MOH_FILE = "gentle-tone.wav"
# CDR(userfield) in the fail-safe; Queue()'s music; MixMonitor: the simulated caller's ears (GW_EARS)
FAILSAFE_MODULES = ("func_cdr", "res_musiconhold", "app_mixmonitor")


def _musiconhold_conf() -> str:
    return (f"; Music on hold (Queue(), the fail-safe): a gentle tone generated by `gateway render`.\n"
            f"[default]\nmode = files\ndirectory = {PBX_INSTANCE_DIR}/{MOH_DIR}\nsort = alpha\n")


def moh_tone(seconds: float = 20.0, rate: int = 8000) -> bytes:
    """A soft chime of four slowly swelling notes (16-bit mono PCM), quiet enough to wait with."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    notes = [(392.0, 0.0), (523.25, 2.5), (440.0, 5.0), (349.23, 7.5)]  # G4 C5 A4 F4, every 2.5 s
    signal = np.zeros_like(t)
    period = 10.0
    for hz, start in notes:
        local = (t - start) % period
        envelope = np.where(local < 2.5, np.sin(np.pi * local / 2.5) ** 2, 0.0)
        signal += envelope * (np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(2 * np.pi * 2 * hz * t))
    signal *= 0.12 * 32767 / max(1e-9, float(np.abs(signal).max()))
    return signal.astype("<i2").tobytes()


def write_moh(instance_dir: Path) -> Path:
    """``<instance>/moh/gentle-tone.wav`` (8 kHz mono 16-bit), written once; returns its path."""
    import wave

    target = instance_dir / MOH_DIR / MOH_FILE
    if target.is_file():
        return target
    target.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(moh_tone())
    os.chmod(tmp, PRIVATE_FILE_MODE)
    os.replace(tmp, target)
    return target


EMERGENCY_CONTEXT = "gw-emergency-transfer"
EMERGENCY_QUEUE_CONTEXT = "gw-emergency-queue"
TRANSFER_DIAL_SECONDS = 120


def _emergency_transfers(config: GatewayConfig) -> list[str]:
    """The desk's emergency transfer: AMI Redirect moves the caller's channel to
    ``gw-emergency-transfer,<service>,1``. A queue is reached through a Local channel, so the
    call's own queue and agent (who keeps the ticket) stay as they were."""
    if not config.emergency_transfers:
        return []
    out = ["; The desk's emergency transfer (hotlines.yaml emergency_transfers), reached by AMI Redirect.",
           f"[{EMERGENCY_CONTEXT}]"]
    queued = []
    for service, dest in config.emergency_transfers.items():
        target = dest.dial or f"Local/{service}@{EMERGENCY_QUEUE_CONTEXT}/n"
        out += [f"exten => {service},1,NoOp(gateway: desk transfer to {service})",
                f" same => n,Set(GW_TRANSFERRED={service})",
                f" same => n,Dial({target},{TRANSFER_DIAL_SECONDS})",
                " same => n,Hangup()"]
        if dest.queue:
            queued.append((service, dest.queue))
    out.append("")
    if queued:
        out.append(f"[{EMERGENCY_QUEUE_CONTEXT}]")
        for service, queue in queued:
            out += [f"exten => {service},1,Queue({queue},,,,${{GW_QUEUE_WAIT}})", " same => n,Hangup()"]
        out.append("")
    return out


def _fallback_queue(config: GatewayConfig) -> str:
    """Where a call goes when the gateway cannot run its flow: the primary flow's usual agent
    queue, the default queue most of its transfers share (not e.g. its emergency hand-off)."""
    flow = config.flows[config.primary.flow]
    queues = [node.default_queue for node in flow.nodes.values() if isinstance(node, TransferNode)]
    if not queues:
        return next(iter(config.queues))
    return max(queues, key=lambda q: (queues.count(q), -queues.index(q)))


def _queues_conf(config: GatewayConfig, keep_queues_of: GatewayConfig | None = None) -> str:
    out = ["[general]", "persistentmembers = no", "shared_lastcall = yes", ""]
    queues = list(config.queues.values())
    agents = dict(config.agents)
    if keep_queues_of is not None:
        # A call in progress may still be on its way to a queue of the previous version.
        queues += [q for name, q in keep_queues_of.queues.items() if name not in config.queues]
        agents.update({k: v for k, v in keep_queues_of.agents.items() if k not in agents})
    for queue in queues:
        out += [
            f"; {queue.label}",
            f"[{queue.name}]",
            f"strategy = {queue.strategy}",
            f"timeout = {queue.timeout}",
            "retry = 1",
            "ringinuse = no",
            "joinempty = yes",
            "leavewhenempty = no",
            "announce-frequency = 0",
            "periodic-announce-frequency = 0",
        ]
        for member in queue.members:
            iface = f"Local/{member}@gw-agents/n"
            out.append(f"member => {iface},0,{agents[member].name},{iface}")
        out.append("")
    return "\n".join(out) + "\n"


# Call detail records, one JSON object a line, for gateway.calls.reconcile: what ended (and
# how) while the gateway was blind. Written by cdr_custom (res_cdrel_custom's advanced
# mapping) to <instance>/log/cdr-custom/; times as epoch seconds. The fail-safe dialplan
# puts ``failsafe;queue=<q>;path=<path>;agi=<AGISTATUS>`` in CDR(userfield).
CDR_FILE = "gateway-cdr.json"
CDR_FIELDS = ("uniqueid", "linkedid", "channel", "dstchannel", "src", "dst", "dcontext", "lastapp", "lastdata",
              "start(double)", "answer(double)", "end(double)", "duration", "billsec", "disposition", "userfield",
              "sequence")


def cdr_path(settings: Settings) -> Path:
    """Where the gateway reads the CDR file (the host's view of Asterisk's log dir)."""
    return settings.instance_dir / "log" / "cdr-custom" / CDR_FILE


def _cdr_conf() -> str:
    # unanswered: a call the IVR never answered still leaves a record; batch = no: each
    # record is written when its call ends, so a crash loses none that had ended.
    return ("[general]\nenable = yes\nunanswered = yes\ncongestion = yes\nbatch = no\n"
            "endbeforehexten = yes\ninitiatedseconds = no\n")


def _cdr_custom_conf() -> str:
    return f"""; CDRs for the gateway's reconciliation (gateway.calls.reconcile reads them).
[{CDR_FILE}]
format = json
fields = {", ".join(CDR_FIELDS)}
"""


def render_files(config: GatewayConfig, settings: Settings, *,
                 keep_queues_of: GatewayConfig | None = None, sim_secret: str = "") -> dict[str, str]:
    """Every file of ``<instance>/etc``; the simulated caller's AMI user only with ``sim_secret``."""
    files = {
        "asterisk.conf": _asterisk_conf() + _node_options(settings),
        "modules.conf": "[modules]\nautoload = no\n" + "".join(f"load => {m}.so\n" for m in MODULES)
        + "".join(f"load => {m}.so\n" for m in FAILSAFE_MODULES if m not in MODULES),
        "musiconhold.conf": _musiconhold_conf(),
        "logger.conf": "[general]\n[logfiles]\nconsole => notice,warning,error\nmessages.log => notice,warning,error\n",
        "manager.conf": _manager_conf(settings, sim_secret),
        "pjsip.conf": _pjsip_conf(settings),
        "extensions.conf": _extensions_conf(config, settings),
        "queues.conf": _queues_conf(config, keep_queues_of),
        "indications.conf": "[general]\ncountry = cn\n\n[cn]\ndescription = China\nringcadence = 1000,4000\n"
        "dial = 450\nbusy = 450/350,0/350\nring = 450/1000,0/4000\ncongestion = 450/700,0/700\n",
        "rtp.conf": "[general]\nrtpstart = 20000\nrtpend = 29999\n",
        "cdr.conf": _cdr_conf(),
        "cdr_custom.conf": _cdr_custom_conf(),
    }
    for stub in STUBS:
        files.setdefault(f"{stub}.conf", "")
    return files


def write_config(config: GatewayConfig, settings: Settings, *, keep_queues_of: GatewayConfig | None = None) -> Path:
    """Write every file into ``<instance>/etc`` atomically (mode 0600, directories 0700); return it.

    The simulated caller's AMI user is rendered when this state dir has its secret
    (``gateway sandbox up`` / ``gateway run`` create it; a production install has none).
    """
    etc = settings.instance_dir / "etc"
    for sub in ("etc", "run", "log", "spool", "db", "prompts", "recordings", "prompts/sim", "log/cdr-custom"):
        (settings.instance_dir / sub).mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    sim_secret = read_sim_ami_secret(settings.state_dir)
    write_moh(settings.instance_dir)
    for name, text in render_files(config, settings, keep_queues_of=keep_queues_of, sim_secret=sim_secret).items():
        tmp = etc / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
        os.fchmod(fd, PRIVATE_FILE_MODE)  # also when a stale temp file was there
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, etc / name)
    return etc
