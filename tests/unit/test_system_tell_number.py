"""``System(tell_number=False)``: the shared end-to-end System's flows skip their ``say_ticket``
nodes (gateway_dev.system.route_around_ticket_number) and stay valid, digits and all."""

from __future__ import annotations

from gateway.ivr_flows.model import SayTicketNode
from gateway.ivr_flows.validate import load_config
from gateway.pbx.prompts import digit_prompts
from gateway_dev.system import ROOT, route_around_ticket_number


def _leading_to(flow, node_id: str) -> list[str]:
    """Every node of ``flow`` whose next step (or a menu option's) is ``node_id``."""
    found = []
    for nid, node in flow.nodes.items():
        nexts = [getattr(node, "next", None), getattr(node, "on_failure", None)]
        nexts += [option.next for option in (getattr(node, "options", None) or {}).values()]
        if node_id in nexts:
            found.append(nid)
    return found


def test_given_the_shipped_flows_when_routed_around_the_ticket_number_then_nothing_leads_to_it_and_all_else_is_kept(
        config_dir):
    shipped = load_config(ROOT / "config")
    tellers = {(fid, nid): node.next for fid, flow in shipped.flows.items()
               for nid, node in flow.nodes.items() if isinstance(node, SayTicketNode)}
    assert set(tellers) == {("main", "tell_number"), ("ko", "tell_number")}
    before = {fid: _leading_to(shipped.flows[fid], nid) for fid, nid in tellers}
    assert before == {"main": ["describe", "emergency"], "ko": ["describe", "emergency"]}

    skipped = route_around_ticket_number(config_dir)

    assert skipped == ["ko:tell_number", "main:tell_number"]
    routed = load_config(config_dir)  # still a valid configuration
    for (fid, nid), after in tellers.items():
        flow = routed.flows[fid]
        assert _leading_to(flow, nid) == []
        assert sorted(_leading_to(flow, after)) == sorted(set(before[fid]) | set(_leading_to(shipped.flows[fid], after)))
        assert isinstance(flow.nodes[nid], SayTicketNode)  # still defined: its digits are still rendered
        assert set(flow.nodes) == set(shipped.flows[fid].nodes)
    assert digit_prompts(routed) == digit_prompts(shipped)  # the desk's read-out keeps its digits
    changed = []  # edited line by line: comments and line numbers kept
    for path in sorted((config_dir / "flows").glob("*.yaml")):
        now = path.read_text(encoding="utf-8").splitlines()
        was = (ROOT / "config" / "flows" / path.name).read_text(encoding="utf-8").splitlines()
        assert len(now) == len(was)
        changed += [(a.strip(), b.strip()) for a, b in zip(was, now) if a != b]
    assert changed == [("next: tell_number", "next: to_queue"),
                       ('"2": {label: 계속, next: tell_number}', '"2": {label: 계속, next: to_queue}'),
                       ("next: tell_number", "next: to_queue"),
                       ('"2": {label: 继续反映诉求, next: tell_number}', '"2": {label: 继续反映诉求, next: to_queue}')]


def test_given_a_flow_without_a_say_ticket_node_when_routed_around_then_the_file_is_untouched(config_dir):
    before = (config_dir / "flows" / "followup.yaml").read_bytes()
    route_around_ticket_number(config_dir)
    assert (config_dir / "flows" / "followup.yaml").read_bytes() == before
