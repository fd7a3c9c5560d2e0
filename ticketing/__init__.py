"""Trouble tickets and the dispatch/repair/feedback loop (filled by the Trouble tickets issue)."""
