"""SNMP/SSH collectors, trap and syslog receivers, config backup (filled by the Collectors issue)."""
