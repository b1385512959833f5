"""The HTTP edge: the application factory and errors middleware (``app``), the host check and
security headers (``edge``), JSON bodies (``bodies``) and path/query checks (``params``)."""
