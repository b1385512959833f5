"""Progress by phone (issue 13): the gateway's side of the flow's ``type: progress`` node.

``lookup`` reads what a caller may hear about tickets from the database, ``voice`` speaks the
free-text parts live (Kokoro, off the event loop, cached on disk), ``service`` puts them
together as the :class:`gateway.ivr_flows.progress.ProgressDesk` the interpreter uses. The
rules (what may be offered to whom, the wording, the attempts) live in the pure
:mod:`gateway.ivr_flows.progress`.
"""
