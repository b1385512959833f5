"""The read-only API at the web edge: tickets and calls (``tickets``), ``/healthz``
(``health``) and ``/metrics`` (``metrics``), wired by ``plugin.setup(app, deps)``.
Nothing is imported here, so importing the package stays cheap."""
