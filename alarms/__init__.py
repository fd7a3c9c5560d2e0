"""Events to alarms, dedup, flapping, maintenance, topology correlation (filled by the Alarm engine issue)."""
