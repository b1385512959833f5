"""The follow-up call (回访, issue 13): scheduling, the IVR session and the desk's manual follow-up."""
