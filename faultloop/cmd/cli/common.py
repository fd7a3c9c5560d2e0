"""What every command module shares: the consoles, the CLI actor, the error type, and the
runtime and transaction a command runs in."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from sqlalchemy.orm import Session

from faultloop import clock
from faultloop.db import transaction, write_transaction
from faultloop.events import Event, Sample
from faultloop.runtime import Runtime, build_runtime, check_database
from faultloop.settings import Settings, load_settings

out = Console()
err = Console(stderr=True)
CLI_ACTOR = "cli"


class CliError(Exception):
    """A bad argument or a refused command: one line on stderr, exit code 2."""


def cli_settings() -> Settings:
    return load_settings()


def open_runtime(*, require_current: bool = True) -> Runtime:
    rt = build_runtime(cli_settings())
    check_database(rt, require_current=require_current)
    return rt


@contextmanager
def tx() -> Iterator[tuple[Runtime, Session]]:
    rt = open_runtime()
    with write_transaction(rt.sessions) as session:  # most commands write; SQLite: lock up front
        yield rt, session


class DurableEventSink:
    """A one-shot command has no alarm engine in-process: its events go to the engine's durable
    queue (``alarm_events``, processed=false), which the serving process drains every tick."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def submit_events(self, events: Sequence[Event]) -> bool:
        from alarms import service as alarm_service

        with transaction(self.rt.sessions) as session:
            alarm_service.store_events(session, events, now=clock.now())
        return True

    def submit_samples(self, samples: Sequence[Sample]) -> bool:
        return False
