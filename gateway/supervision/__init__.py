"""Supervision the way the city measures it (issue 14): the three rates, figures, warnings, reports."""
