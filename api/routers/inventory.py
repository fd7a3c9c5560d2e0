from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status

from api.deps import PageDep, SessionDep, UserDep, WriteSessionDep, runtime
from api.params import Id
from devices import hostkeys
from faultloop.accounts.models import Role
from faultloop.runtime import Runtime
from inventory import service
from inventory.schemas import (
    DeviceIn,
    DeviceOut,
    DeviceUpdate,
    InterfaceIn,
    InterfaceOut,
    InterfaceUpdate,
    LinkIn,
    LinkOut,
    Page,
    SiteIn,
    SiteOut,
)

router = APIRouter(prefix="/api/v1", tags=["inventory"])
RuntimeDep = Annotated[Runtime, Depends(runtime)]


@router.get("/sites", response_model=list[SiteOut])
def list_sites(session: SessionDep, user: UserDep) -> list[SiteOut]:
    return [SiteOut.model_validate(s) for s in service.list_sites(session)]


@router.post("/sites", status_code=status.HTTP_201_CREATED, response_model=SiteOut)
def create_site(body: SiteIn, session: WriteSessionDep, user: UserDep) -> SiteOut:
    return SiteOut.model_validate(service.create_site(session, body, actor=user.username))


@router.get("/sites/{site_id}", response_model=SiteOut)
def get_site(site_id: Id, session: SessionDep, user: UserDep) -> SiteOut:
    return SiteOut.model_validate(service.get_site(session, site_id))


@router.put("/sites/{site_id}", response_model=SiteOut)
def update_site(site_id: Id, body: SiteIn, session: WriteSessionDep, user: UserDep) -> SiteOut:
    return SiteOut.model_validate(service.update_site(session, site_id, body, actor=user.username))


@router.delete("/sites/{site_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_site(site_id: Id, session: WriteSessionDep, user: UserDep) -> None:
    service.delete_site(session, site_id, actor=user.username)


@router.get("/devices", response_model=Page[DeviceOut])
def list_devices(
    session: SessionDep,
    user: UserDep,
    page: PageDep,
    site: Annotated[str | None, Query(description="Site name")] = None,
    role: Annotated[str | None, Query()] = None,
    vendor: Annotated[str | None, Query()] = None,
    tag: Annotated[str | None, Query()] = None,
    q: Annotated[str | None, Query(description="Substring of hostname or address")] = None,
) -> Page[DeviceOut]:
    rows, total = service.list_devices(
        session, limit=page.limit, offset=page.offset, site=site, role=role, vendor=vendor, tag=tag, q=q
    )
    return Page[DeviceOut](
        items=[service.device_out(d) for d in rows], total=total, limit=page.limit, offset=page.offset
    )


@router.post("/devices", status_code=status.HTTP_201_CREATED, response_model=DeviceOut)
def create_device(body: DeviceIn, session: WriteSessionDep, user: UserDep, rt: RuntimeDep) -> DeviceOut:
    return service.device_out(service.create_device(session, rt.vault, body, actor=user.username))


@router.get("/devices/{device_id}", response_model=DeviceOut)
def get_device(device_id: Id, session: SessionDep, user: UserDep) -> DeviceOut:
    return service.device_out(service.get_device(session, device_id))


@router.patch("/devices/{device_id}", response_model=DeviceOut)
def update_device(
    device_id: Id, body: DeviceUpdate, session: WriteSessionDep, user: UserDep, rt: RuntimeDep
) -> DeviceOut:
    device = service.update_device(
        session,
        rt.vault,
        device_id,
        body,
        actor=user.username,
        actor_is_admin=user.role == Role.admin,
        forget_host_key=lambda dev_id: hostkeys.forget(
            session, device_id=dev_id, actor=user.username, reason="address changed"
        ),
    )
    return service.device_out(device)


@router.delete("/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_device(device_id: Id, session: WriteSessionDep, user: UserDep) -> None:
    service.delete_device(session, device_id, actor=user.username)


@router.get("/devices/{device_id}/interfaces", response_model=list[InterfaceOut])
def list_interfaces(device_id: Id, session: SessionDep, user: UserDep) -> list[InterfaceOut]:
    return [InterfaceOut.model_validate(i) for i in service.list_interfaces(session, device_id=device_id)]


@router.post("/devices/{device_id}/interfaces", status_code=status.HTTP_201_CREATED, response_model=InterfaceOut)
def create_interface(device_id: Id, body: InterfaceIn, session: WriteSessionDep, user: UserDep) -> InterfaceOut:
    itf = service.create_interface(session, device_id=device_id, data=body, actor=user.username)
    return InterfaceOut.model_validate(itf)


@router.get("/interfaces/{interface_id}", response_model=InterfaceOut)
def get_interface(interface_id: Id, session: SessionDep, user: UserDep) -> InterfaceOut:
    return InterfaceOut.model_validate(service.get_interface(session, interface_id))


@router.patch("/interfaces/{interface_id}", response_model=InterfaceOut)
def update_interface(interface_id: Id, body: InterfaceUpdate, session: WriteSessionDep, user: UserDep) -> InterfaceOut:
    return InterfaceOut.model_validate(service.update_interface(session, interface_id, body, actor=user.username))


@router.delete("/interfaces/{interface_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_interface(interface_id: Id, session: WriteSessionDep, user: UserDep) -> None:
    service.delete_interface(session, interface_id, actor=user.username)


@router.get("/links", response_model=Page[LinkOut])
def list_links(
    session: SessionDep,
    user: UserDep,
    page: PageDep,
    device: Annotated[str | None, Query(description="Hostname at either end")] = None,
    source: Annotated[Literal["manual", "discovered"] | None, Query()] = None,
) -> Page[LinkOut]:
    rows, total = service.list_links(session, limit=page.limit, offset=page.offset, device=device, source=source)
    return Page[LinkOut](
        items=[service.link_out(link) for link in rows], total=total, limit=page.limit, offset=page.offset
    )


@router.post("/links", status_code=status.HTTP_201_CREATED, response_model=LinkOut)
def create_link(body: LinkIn, session: WriteSessionDep, user: UserDep) -> LinkOut:
    return service.link_out(service.create_link(session, body, actor=user.username))


@router.get("/links/{link_id}", response_model=LinkOut)
def get_link(link_id: Id, session: SessionDep, user: UserDep) -> LinkOut:
    return service.link_out(service.get_link(session, link_id))


@router.delete("/links/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_link(link_id: Id, session: WriteSessionDep, user: UserDep) -> None:
    service.delete_link(session, link_id, actor=user.username)
