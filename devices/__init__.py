"""Southbound device access: SSH sessions, host key pins, the SNMP client and its targets."""
