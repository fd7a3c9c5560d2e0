"""Dispatch: technician profiles, current load, auto-assignment by site, skill and least load."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faultloop import clock
from faultloop.accounts.models import Role, User
from faultloop.errors import InvalidInput, NotFound
from faultloop.notify import check_email, check_url
from ticketing.models import TechnicianProfile, Ticket
from ticketing.policy import FIELD_STATES


def loads(session: Session) -> dict[int, int]:
    """Tickets in the field (dispatched .. waiting) per assigned technician."""
    rows = session.execute(
        select(Ticket.assignee_id, func.count())
        .where(Ticket.state.in_(FIELD_STATES), Ticket.assignee_id.is_not(None))
        .group_by(Ticket.assignee_id)
    )
    return {int(uid): int(n) for uid, n in rows if uid is not None}


def pick(session: Session, *, site: str, skill: str, min_tier: int = 1, exclude: int | None = None) -> User | None:
    """The on-shift technician for this site with this skill and the least load (then lowest tier, then id)."""
    candidates = session.execute(
        select(TechnicianProfile, User)
        .join(User, User.id == TechnicianProfile.user_id)
        .where(TechnicianProfile.on_shift.is_(True), User.disabled.is_(False), TechnicianProfile.tier >= min_tier)
    ).all()
    load = loads(session)
    eligible = [
        (load.get(user.id, 0), prof.tier, user.id, user)
        for prof, user in candidates
        if user.id != exclude
        and (not site or "*" in prof.sites or site in prof.sites)
        and (not skill or skill in prof.skills)
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda row: row[:3])[3]


def profile_of(session: Session, user_id: int) -> TechnicianProfile | None:
    return session.scalar(select(TechnicianProfile).where(TechnicianProfile.user_id == user_id))


def upsert_profile(
    session: Session,
    *,
    username: str,
    skills: list[str],
    sites: list[str],
    team: str = "",
    tier: int = 1,
    on_shift: bool = True,
    notify_to: str | None = None,
    allow_private: bool = False,
) -> TechnicianProfile:
    """Create or replace a technician's profile; ``notify_to`` (an e-mail address or an http(s)
    webhook URL, empty: none) is where a dispatch to them is announced, None keeps the stored one.
    A webhook on a loopback or link-local host is refused unless ``allow_private``
    (``FAULTLOOP_TECHNICIAN_NOTIFY_ALLOW_PRIVATE``)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    if user.role != Role.technician:
        raise InvalidInput(f"user: {username!r} has role {user.role.value!r}; expected technician", field="user")
    if not 1 <= tier <= 5:
        raise InvalidInput("tier: expected 1..5", field="tier")
    for name, values in (("skills", skills), ("sites", sites)):
        if any(not v.strip() or len(v) > 100 for v in values):
            raise InvalidInput(f"{name}: expected non-empty names of at most 100 characters", field=name)
    address = None
    if notify_to is not None:
        try:
            address = check_address(notify_to, allow_private=allow_private)
        except ValueError as exc:
            raise InvalidInput(f"notify_to: {exc}", field="notify_to") from None
    prof = profile_of(session, user.id)
    if prof is None:
        prof = TechnicianProfile(user_id=user.id, created_at=clock.now())
        session.add(prof)
    prof.skills, prof.sites, prof.team, prof.tier, prof.on_shift = list(skills), list(sites), team, tier, on_shift
    if address is not None:
        prof.notify_to = address
    elif prof.notify_to is None:
        prof.notify_to = ""
    session.flush()
    return prof


def check_address(value: str, *, allow_private: bool) -> str:
    """A technician's notification address: an e-mail address or an http(s) webhook URL (empty: none)."""
    value = value.strip()
    if not value:
        return ""
    if "://" in value or value.lower().startswith(("http:", "https:")):
        return check_url(value, allow_private=allow_private)
    return check_email(value)
