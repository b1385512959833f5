"""Wires the pure suggestion logic (:mod:`gateway.desk.suggest`) to the desk's ticket dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gateway.desk.catalogue_load import load_catalogue
from gateway.desk.knowledge import load_knowledge
from gateway.desk.suggest import suggest
from gateway.desk.suggest_model import PastTicket, TicketFacts


def load_suggester(config_dir: Path) -> Callable[..., dict]:
    """``suggester(ticket, history=[...], open_tickets=[...]) -> dict`` from config/catalogue.yaml
    and config/knowledge/; raises ConfigError (file, line, field) when either is invalid."""
    catalogue = load_catalogue(Path(config_dir) / "catalogue.yaml")
    knowledge = load_knowledge(Path(config_dir) / "knowledge")

    def suggester(ticket: dict, *, history: list[dict], open_tickets: list[dict]) -> dict:
        seen: dict[int, PastTicket] = {}
        for row in [*history, *open_tickets]:
            if row["id"] != ticket["id"] and row["id"] not in seen:
                seen[row["id"]] = PastTicket.from_ticket(row)
        facts = TicketFacts.from_ticket(ticket)
        return suggest(facts, catalogue=catalogue, knowledge=knowledge, history=list(seen.values())).to_json()

    return suggester
