"""Supervision for the 12345 centre (issue 14): three rates, call-centre figures, warnings, reports, metrics."""
