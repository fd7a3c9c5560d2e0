"""SNMP wire codec: BER, PDUs, SNMPv3 messages and USM. A leaf: imports nothing of this repository."""
