"""HTTP edge: health, the ticket API (read-only for now)."""
