"""IVR flows: validated flow data and a pure interpreter (no Asterisk imports)."""
