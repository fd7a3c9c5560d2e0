"""The built-in lab network: simulated devices answering real SNMP and SSH, traps, fault injection."""
