"""Config backups, latest CLI show results and SSH host keys of a device.

Config text and diffs may contain secrets (enable secrets, SNMP communities): those
routes are for admin, noc and provisioner only (see api/rbac.py); metadata is for all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import PageDep, ServicesDep, SessionDep, UserDep, WriteSessionDep, runtime
from api.params import MAX_ID, Id
from collectors import backup, cli_collect
from devices import hostkeys
from devices.hostkeys import HostKeyError
from devices.ssh import emit
from faultloop.errors import Conflict
from faultloop.runtime import Runtime
from inventory import service as inventory

router = APIRouter(prefix="/api/v1", tags=["config"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]


class BackupOut(BaseModel):
    id: int
    device_id: int
    taken_at: datetime
    last_seen_at: datetime
    digest: str | None = Field(
        description="HMAC-SHA256 of the normalized text under a key derived from the secret key: equal for "
        "equal configurations (under one key), reveals nothing else; null until a row stored in clear "
        "before encryption at rest is sealed"
    )
    size: int
    lines_added: int
    lines_removed: int
    trigger: str
    actor: str


class BackupPage(BaseModel):
    items: list[BackupOut]
    total: int
    limit: int
    offset: int


class BackupRunOut(BaseModel):
    status: str  # first_version, new_version, unchanged
    backup: BackupOut
    previous_id: int | None


class CliResultOut(BaseModel):
    command: str
    taken_at: datetime
    parsed: list[dict[str, Any]] | None
    output: str


class HostKeyOut(BaseModel):
    device_id: int
    hostname: str
    policy: str
    key_type: str | None
    fingerprint: str | None
    trusted_at: datetime | None
    trusted_by: str | None
    last_seen_at: datetime | None
    pending_key_type: str | None
    pending_fingerprint: str | None
    pending_seen_at: datetime | None


class HostKeyAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fingerprint: str | None = Field(
        None, max_length=100, description="The pending key's fingerprint as checked out of band (recommended)"
    )


@router.get("/devices/{device_id}/config-backups", response_model=BackupPage)
def list_backups(device_id: Id, session: SessionDep, user: UserDep, page: PageDep) -> BackupPage:
    rows, total = backup.list_backups(session, device_id=device_id, limit=page.limit, offset=page.offset)
    return BackupPage(
        items=[BackupOut(**backup.backup_out(r)) for r in rows], total=total, limit=page.limit, offset=page.offset
    )


@router.post("/devices/{device_id}/config-backups", status_code=status.HTTP_201_CREATED, response_model=BackupRunOut)
def backup_now(device_id: Id, services: ServicesDep, session: SessionDep, user: UserDep) -> BackupRunOut:
    inventory.get_device(session, device_id)  # 404 before any SSH
    try:
        outcome = services.backup_now(device_id, actor=user.username)
    except HostKeyError as exc:
        raise Conflict(str(exc), field="ssh_host_key") from None
    # not re-read through this request's session: its snapshot may predate the backup's commit
    return BackupRunOut(status=outcome.status, backup=BackupOut(**outcome.summary), previous_id=outcome.previous_id)


@router.get("/devices/{device_id}/config-backups/{backup_id}", response_class=PlainTextResponse)
def get_backup_text(
    device_id: Id, backup_id: Id, session: SessionDep, user: UserDep, rt: RuntimeDep
) -> PlainTextResponse:
    row = backup.get_backup(session, device_id=device_id, backup_id=backup_id)
    headers = {"Cache-Control": "no-store"}
    if row.digest:
        headers["ETag"] = f'"{row.digest}"'
    return PlainTextResponse(backup.backup_text(rt.vault, row), headers=headers)


@router.get(
    "/devices/{device_id}/config-backups/{backup_id}/diff",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/x-diff": {"schema": {"type": "string"}}}}},
)
def get_backup_diff(
    device_id: Id,
    backup_id: Id,
    session: SessionDep,
    user: UserDep,
    rt: RuntimeDep,
    against: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Backup id to diff from; default the previous")
    ] = None,
) -> PlainTextResponse:
    diff = backup.diff_backups(session, rt.vault, device_id=device_id, backup_id=backup_id, against=against)
    return PlainTextResponse(
        diff.text,
        media_type="text/x-diff",
        headers={"X-Diff-From": str(diff.old.id) if diff.old else "", "Cache-Control": "no-store"},
    )


@router.get("/devices/{device_id}/cli", response_model=list[CliResultOut])
def cli_results(
    device_id: Id,
    session: SessionDep,
    user: UserDep,
    command: Annotated[str | None, Query(max_length=200, description="One command, e.g. 'show version'")] = None,
) -> list[CliResultOut]:
    if command is not None:
        return [
            CliResultOut(
                **cli_collect.result_out(cli_collect.latest_result(session, device_id=device_id, command=command))
            )
        ]
    return [CliResultOut(**cli_collect.result_out(r)) for r in cli_collect.list_results(session, device_id=device_id)]


@router.get("/devices/{device_id}/ssh-host-key", response_model=HostKeyOut)
def get_host_key(device_id: Id, session: SessionDep, user: UserDep) -> HostKeyOut:
    device = inventory.get_device(session, device_id)
    return HostKeyOut(**hostkeys.host_key_out(device, hostkeys.get_host_key(session, device_id)))


@router.post("/devices/{device_id}/ssh-host-key/accept", response_model=HostKeyOut)
def accept_host_key(
    device_id: Id, body: HostKeyAccept, services: ServicesDep, session: WriteSessionDep, user: UserDep
) -> HostKeyOut:
    device = inventory.get_device(session, device_id)
    row = hostkeys.accept_pending(session, device=device, actor=user.username, expected_fingerprint=body.fingerprint)
    out = HostKeyOut(**hostkeys.host_key_out(device, row))
    event = hostkeys.host_key_accepted_event(device, row, actor=user.username)
    session.commit()  # the clear below is a side effect: only once the accept is durable
    emit(services.sink, [event])
    return out
