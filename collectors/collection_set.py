"""What the poller collects, declared as data with numeric OIDs.

Adding a MIB table is one more ``Table`` entry: the poller walks every declared column of
every table in the same multi-column GETBULK and hands the rows, keyed by column name and
index, to the interpreter (``collectors.snapshot``). No MIB files are loaded at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.snmp import Oid


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    entry: Oid  # the table's entry OID; a column is entry + (column number,)
    columns: dict[str, int]

    def roots(self) -> list[Oid]:
        return [(*self.entry, n) for n in self.columns.values()]


@dataclass(frozen=True, slots=True)
class CollectionSet:
    scalars: dict[str, Oid]  # name -> instance OID (with .0)
    tables: tuple[Table, ...]

    def roots(self) -> list[Oid]:
        return [root for table in self.tables for root in table.roots()]


SYSTEM: dict[str, Oid] = {
    "sysDescr": (1, 3, 6, 1, 2, 1, 1, 1, 0),
    "sysObjectID": (1, 3, 6, 1, 2, 1, 1, 2, 0),
    "sysUpTime": (1, 3, 6, 1, 2, 1, 1, 3, 0),
    "sysName": (1, 3, 6, 1, 2, 1, 1, 5, 0),
    "sysLocation": (1, 3, 6, 1, 2, 1, 1, 6, 0),
}

IF_TABLE = Table(
    "ifTable",
    (1, 3, 6, 1, 2, 1, 2, 2, 1),
    {
        "ifDescr": 2,
        "ifType": 3,
        "ifSpeed": 5,
        "ifAdminStatus": 7,
        "ifOperStatus": 8,
        "ifInOctets": 10,
        "ifInDiscards": 13,
        "ifInErrors": 14,
        "ifOutOctets": 16,
        "ifOutDiscards": 19,
        "ifOutErrors": 20,
    },
)
IFX_TABLE = Table(
    "ifXTable",
    (1, 3, 6, 1, 2, 1, 31, 1, 1, 1),
    {
        "ifName": 1,
        "ifHCInOctets": 6,
        "ifHCOutOctets": 10,
        "ifHighSpeed": 15,
        "ifAlias": 18,
        "ifCounterDiscontinuityTime": 19,
    },
)
HR_STORAGE = Table(
    "hrStorageTable",
    (1, 3, 6, 1, 2, 1, 25, 2, 3, 1),
    {"hrStorageType": 2, "hrStorageDescr": 3, "hrStorageAllocationUnits": 4, "hrStorageSize": 5, "hrStorageUsed": 6},
)
HR_PROCESSOR = Table("hrProcessorTable", (1, 3, 6, 1, 2, 1, 25, 3, 3, 1), {"hrProcessorLoad": 2})
ENTITY_SENSOR = Table(
    "entPhySensorTable",
    (1, 3, 6, 1, 2, 1, 99, 1, 1, 1),
    {"entPhySensorType": 1, "entPhySensorScale": 2, "entPhySensorPrecision": 3, "entPhySensorValue": 4},
)
ENTITY_NAME = Table("entPhysicalTable", (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1), {"entPhysicalName": 7})
LLDP_LOC_PORT = Table("lldpLocPortTable", (1, 0, 8802, 1, 1, 2, 1, 3, 7, 1), {"lldpLocPortId": 3, "lldpLocPortDesc": 4})
LLDP_REM = Table(
    "lldpRemTable",
    (1, 0, 8802, 1, 1, 2, 1, 4, 1, 1),
    {"lldpRemChassisId": 5, "lldpRemPortId": 7, "lldpRemPortDesc": 8, "lldpRemSysName": 9},
)

STANDARD = CollectionSet(
    scalars=SYSTEM,
    tables=(IF_TABLE, IFX_TABLE, HR_STORAGE, HR_PROCESSOR, ENTITY_SENSOR, ENTITY_NAME, LLDP_LOC_PORT, LLDP_REM),
)

HR_STORAGE_RAM = (1, 3, 6, 1, 2, 1, 25, 2, 1, 2)

# lowerLayerDown is stored as "down": the inventory column holds 10 characters.
IF_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "down"}
