"""Kamailio (Debian's 5.6) in front of several Asterisk nodes, for the tests and the benches.

Theory of operation
-------------------
:func:`render_config` is pure: the nodes' SIP addresses in, ``kamailio.cfg`` and the
dispatcher list out. The proxy is transaction-stateful (``tm``) because the dispatcher's
OPTIONS probing and ``ds_next_dst()`` failover need it:

* every node is probed with OPTIONS every ``ping_interval`` seconds; after
  ``threshold`` unanswered probes it is *inactive* and ``ds_select_dst`` skips it, and
  it comes back by itself when it answers again (``ds_probing_mode=1``);
* a new INVITE goes round-robin (algorithm 4) to an active node; 408 (no reply within
  ``fr_timer``) or a 5xx marks that node down and the INVITE is sent to the next one;
* ``record_route`` keeps the proxy in the dialog, and the node each Call-ID went to is
  kept in an ``htable``, so an ACK or BYE without a Route header (a plain SIPp scenario
  that ignores Record-Route) still reaches the node that owns the call;
* OPTIONS to the proxy itself is answered 200 (the readiness probe of :class:`Kamailio`).

:class:`Kamailio` runs ``kamailio -DD -E`` in the foreground in a private directory
(config, dispatcher list, runtime dir, the ``ctl`` socket for ``kamcmd``, its log) and
stops it with SIGTERM. ``python -m gateway_dev.kamailio check`` renders a config for two
nodes and runs ``kamailio -c`` on it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
KAMCMD = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
MODULES_DIR = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
DISPATCHER_SET = 1


class KamailioError(RuntimeError):
    pass


@dataclass(frozen=True)
class Destination:
    """One Asterisk node as the proxy sees it."""

    name: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", self.name):
            raise ValueError(f"node name {self.name!r}: letters, digits, '-' and '_' only")
        if not 0 < self.port < 65536:
            raise ValueError(f"node {self.name}: port {self.port} out of range")

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}"


def dispatcher_list(destinations: list[Destination]) -> str:
    if not destinations:
        raise ValueError("the proxy needs at least one Asterisk node")
    lines = ["# setid destination flags priority attributes (rendered by gateway_dev.kamailio)"]
    lines += [f"{DISPATCHER_SET} {d.uri} 0 0 duid={d.name}" for d in destinations]
    return "\n".join(lines) + "\n"


def render_config(*, listen_host: str, listen_port: int, list_file: Path, ctl_socket: Path,
                  ping_interval: int = 1, threshold: int = 2, fr_timer_ms: int = 2000,
                  debug: int = 1) -> str:
    """``kamailio.cfg`` for a dispatcher proxy listening on UDP ``listen_host:listen_port``."""
    if ping_interval < 1 or threshold < 1:
        raise ValueError("ping_interval and threshold must be at least 1")
    me = f"{listen_host}:{listen_port}"
    return f"""#!KAMAILIO
# Rendered by gateway_dev.kamailio: a stateful dispatcher in front of the Asterisk nodes.
debug={debug}
log_stderror=yes
fork=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:{me}
alias=udp:{me}
mpath="{MODULES_DIR}"

loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "htable.so"
loadmodule "ctl.so"
loadmodule "dispatcher.so"

modparam("ctl", "binrpc", "unix:{ctl_socket}")
# No provisional reply from a node within fr_timer: 408 in failure_route, next node.
modparam("tm", "fr_timer", {fr_timer_ms})
modparam("tm", "fr_inv_timer", 120000)
modparam("rr", "enable_full_lr", 1)
# Call-ID -> the node's address, for in-dialog requests that carry no Route header.
modparam("htable", "htable", "dlg=>size=12;autoexpire=14400;")
modparam("dispatcher", "list_file", "{list_file}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "xavp_dst", "_dsdst_")
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:kamailio@{me}")
modparam("dispatcher", "ds_ping_interval", {ping_interval})
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", {threshold})
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "Kamailio up");
        exit;
    }}
    if (has_totag()) {{
        route(WITHINDLG);
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Only calls here");
        exit;
    }}
    record_route();
    if (!ds_select_dst("{DISPATCHER_SET}", "4")) {{
        xlog("L_ERR", "no Asterisk node available for $ci\\n");
        sl_send_reply("503", "No Asterisk node available");
        exit;
    }}
    $sht(dlg=>$ci) = $du;
    t_on_failure("FAILOVER");
    route(RELAY);
}}

route[WITHINDLG] {{
    if (loose_route()) {{
        if (is_method("BYE")) {{
            $sht(dlg=>$ci) = $null;
        }}
        route(RELAY);
    }}
    if ($sht(dlg=>$ci) != $null) {{
        $du = $sht(dlg=>$ci);
        if (is_method("BYE")) {{
            $sht(dlg=>$ci) = $null;
        }}
        route(RELAY);
    }}
    if (is_method("ACK")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    sl_send_reply("404", "No such dialog");
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

failure_route[FAILOVER] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_check_status("408|5[0-9][0-9]") || t_branch_timeout()) {{
        xlog("L_WARN", "node $du failed ($T_reply_code) for $ci: marked down, trying the next\\n");
        ds_mark_dst("ip");
        if (ds_next_dst()) {{
            $sht(dlg=>$ci) = $du;
            t_on_failure("FAILOVER");
            t_relay();
            exit;
        }}
    }}
}}
"""


# docker/compose.yaml's topology (every service in one network namespace, see docker/README.md).
COMPOSE_NODES = (Destination("pbx1", "127.0.0.1", 5060), Destination("pbx2", "127.0.0.1", 5061))
COMPOSE_PORT = 5070


def docker_files() -> dict[str, str]:
    """``docker/kamailio/*`` as they must be for compose.yaml (a unit test keeps them in step)."""
    return {
        "dispatcher.list": dispatcher_list(list(COMPOSE_NODES)),
        "kamailio.cfg": render_config(listen_host="127.0.0.1", listen_port=COMPOSE_PORT,
                                      list_file=Path("/etc/kamailio/dispatcher.list"),
                                      ctl_socket=Path("/run/kamailio/kamailio.ctl")),
    }


def check_config(cfg: Path) -> None:
    """``kamailio -c -f cfg``: raises :class:`KamailioError` with its output when refused."""
    proc = subprocess.run([KAMAILIO, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise KamailioError(f"kamailio -c refused {cfg}:\n{(proc.stdout + proc.stderr)[-3000:]}")


def options_ping(host: str, port: int, timeout: float = 0.5) -> int | None:
    """Send one OPTIONS to ``host:port``; the status code of its answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        call_id = uuid.uuid4().hex
        msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bK{call_id[:16]};rport\r\n"
               "Max-Forwards: 5\r\n"
               f"From: <sip:probe@127.0.0.1:{lport}>;tag={call_id[:8]}\r\n"
               f"To: <sip:{host}:{port}>\r\n"
               f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        s.sendto(msg.encode(), (host, port))
        try:
            data, _ = s.recvfrom(65535)
        except (TimeoutError, OSError):
            return None
    m = re.match(rb"SIP/2\.0 (\d{3})", data)
    return int(m.group(1)) if m else None


class Kamailio:
    """``kamailio -DD -E`` in ``state_dir`` on UDP ``host:port``; use as a context manager."""

    def __init__(self, destinations: list[Destination], *, port: int, host: str = "127.0.0.1",
                 state_dir: Path | None = None, ping_interval: int = 1, threshold: int = 2) -> None:
        self.destinations = list(destinations)
        self.host, self.port = host, port
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="gw-kamailio-"))
        self.ping_interval, self.threshold = ping_interval, threshold
        self.proc: subprocess.Popen | None = None

    @property
    def cfg(self) -> Path:
        return self.state_dir / "kamailio.cfg"

    @property
    def ctl_socket(self) -> Path:
        return self.state_dir / "run" / "kamailio.ctl"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "kamailio.log"

    def write(self) -> Path:
        (self.state_dir / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
        list_file = self.state_dir / "dispatcher.list"
        list_file.write_text(dispatcher_list(self.destinations))
        self.cfg.write_text(render_config(listen_host=self.host, listen_port=self.port, list_file=list_file,
                                          ctl_socket=self.ctl_socket, ping_interval=self.ping_interval,
                                          threshold=self.threshold))
        check_config(self.cfg)
        return self.cfg

    def start(self, timeout: float = 15) -> float:
        """Render, check, start; returns once the proxy answers OPTIONS (seconds taken)."""
        started = time.monotonic()
        self.write()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [KAMAILIO, "-DD", "-E", "-f", str(self.cfg), "-Y", str(self.state_dir / "run"),
                 "-P", str(self.state_dir / "run" / "kamailio.pid")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = started + timeout
        while options_ping(self.host, self.port, timeout=0.2) != 200:
            if self.proc.poll() is not None:
                raise KamailioError(f"kamailio exited ({self.proc.returncode}):\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise KamailioError(f"kamailio did not answer OPTIONS within {timeout:g} s:\n{self.log_tail()}")
        return time.monotonic() - started

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return "(no log)"

    def destination_states(self) -> dict[str, str]:
        """``{sip uri: flags}`` as ``kamcmd dispatcher.list`` says (``AP`` active+probing,
        ``IP``/``TP`` inactive/trying: down)."""
        proc = subprocess.run([KAMCMD, "-s", f"unix:{self.ctl_socket}", "dispatcher.list"],
                              capture_output=True, text=True, timeout=10)
        if proc.returncode != 0:
            raise KamailioError(f"kamcmd dispatcher.list failed: {proc.stderr.strip()}")
        return dict(re.findall(r"URI:\s*(\S+)\s+FLAGS:\s*(\S+)", proc.stdout))

    def stop(self, timeout: float = 10) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the main process and its children
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> "Kamailio":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway_dev.kamailio check`` | ``docker`` | ``run --port P --node name=127.0.0.1:5061 ...``."""
    parser = argparse.ArgumentParser(prog="gateway_dev.kamailio")
    parser.add_argument("action", choices=("check", "run", "docker"))
    parser.add_argument("--port", type=int, default=5070)
    parser.add_argument("--node", action="append", default=[], help="name=host:port (repeatable)")
    args = parser.parse_args(argv)
    nodes = []
    for spec in args.node or ["pbx1=127.0.0.1:5060", "pbx2=127.0.0.1:5061"]:
        name, _, hostport = spec.partition("=")
        host, _, port = hostport.rpartition(":")
        nodes.append(Destination(name, host, int(port)))
    if args.action == "docker":  # rewrite docker/kamailio/ from the same renderer
        out = Path(__file__).resolve().parents[1] / "docker" / "kamailio"
        for name, text in docker_files().items():
            (out / name).write_text(text)
        print(f"written: {out}")
        return 0
    if args.action == "check":
        with tempfile.TemporaryDirectory(prefix="gw-kamailio-check-") as tmp:
            Kamailio(nodes, port=args.port, state_dir=Path(tmp)).write()
        print("kamailio -c: config OK")
        return 0
    kam = Kamailio(nodes, port=args.port)
    took = kam.start()
    print(f"kamailio on udp:127.0.0.1:{args.port} in {took:.1f} s ({kam.state_dir}); Ctrl-C stops it", flush=True)
    try:
        kam.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        kam.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
