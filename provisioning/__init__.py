"""Service activation orders (filled by the Service activation issue)."""
