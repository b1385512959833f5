"""The agent desk: screen pops, decisions on draft tickets, and suggestions.

The suggestion logic is pure and lives in three modules:

* :mod:`gateway.desk.catalogue`: the responsibility catalogue (``config/catalogue.yaml``);
* :mod:`gateway.desk.knowledge`: the hotline knowledge base (``config/knowledge/*.yaml``);
* :mod:`gateway.desk.suggest`: ``suggest(facts, catalogue=..., knowledge=..., history=...)``.

Nothing is imported here, so importing the package stays cheap.
"""
