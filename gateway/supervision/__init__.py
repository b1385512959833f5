"""Supervision (issue 14): the three rates, call-centre figures, early warnings and reports."""
