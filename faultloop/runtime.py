"""What a running faultloop holds: settings, database, vault. Built once in faultloop.app."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from faultloop.settings import Settings
from faultloop.vault import Vault


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    vault: Vault
