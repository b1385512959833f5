"""Hotline mergers as a live, versioned configuration: versions, changes, dry runs, admin API."""
