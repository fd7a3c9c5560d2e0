"""Alarm engine: events -> deduplicated, cleared, correlated alarms, with the reason recorded."""
