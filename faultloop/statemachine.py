"""State machines as data: a table of (from-state, action, to-state, roles allowed), enforced by
one function (``check``) and rendered into the docs by ``markdown``.

Tickets (``ticketing.policy.TICKETS``) and service orders (``provisioning.policy.ORDERS``) each
define only their table; the wording of a refusal is part of the table, so each domain keeps
its own messages while the rules stay one implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from faultloop.errors import Forbidden, IllegalTransition, InvalidInput

SAME = "_same"  # to-state of an action that leaves the state as it is (rendered as the from-state)


@dataclass(frozen=True, slots=True)
class Transition:
    from_state: str
    action: str
    to_state: str
    roles: frozenset[str]
    note: str = ""

    def next_state(self) -> str:
        return self.from_state if self.to_state == SAME else self.to_state


@dataclass(frozen=True)
class StateTable:
    """One state machine. ``actions`` is the order in which lists of actions are shown (default:
    as they first appear in the table). Roles are the actor's role plus the relations it has to
    the thing (a ticket's ``assignee``). The refusal texts are ``str.format`` templates:

    - ``illegal`` (409): ``{action}``, ``{state}``, ``{allowed}`` (comma-separated, or ``none``);
    - ``forbidden`` (403): ``{who}``, ``{action}``, ``{state}``, ``{roles}`` (the row's roles);
      ``who`` is ``role 'x'`` unless ``who`` names the role otherwise.

    ``offer`` decides what the 409 lists: the actions this actor may take (``actor``) or every
    action the state has except the ``internal`` ones faultloop takes itself (``state``).
    With ``strict_actions`` an action missing from the whole table is bad input (422) naming
    the actions there are, not a 409.
    """

    states: tuple[str, ...]
    transitions: tuple[Transition, ...]
    illegal: str
    forbidden: str
    actions: tuple[str, ...] = ()
    who: Mapping[str, str] = field(default_factory=dict)
    offer: Literal["actor", "state"] = "actor"
    internal: frozenset[str] = frozenset()
    strict_actions: bool = False
    _index: dict[tuple[str, str], Transition] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], Transition] = {}
        for t in self.transitions:
            if (t.from_state, t.action) in index:
                raise ValueError(f"two rows for {t.action!r} from {t.from_state!r}: the table must be deterministic")
            unknown = {t.from_state, t.to_state} - set(self.states) - {SAME}
            if unknown:
                raise ValueError(f"row {t.from_state} --{t.action}--> {t.to_state}: unknown state {unknown.pop()!r}")
            index[(t.from_state, t.action)] = t
        in_table = tuple(dict.fromkeys(t.action for t in self.transitions))
        if not self.actions:
            object.__setattr__(self, "actions", in_table)
        elif set(self.actions) != set(in_table):
            raise ValueError("actions must list exactly the table's actions")
        object.__setattr__(self, "_index", index)

    def find(self, state: str, action: str) -> Transition | None:
        return self._index.get((state, action))

    def allowed(self, state: str, roles: Iterable[str] | None = None) -> list[str]:
        """The actions the state allows (to ``roles``; None: to anyone), in ``actions`` order."""
        having = None if roles is None else frozenset(roles)
        return [
            a
            for a in self.actions
            if (t := self._index.get((state, a))) is not None and (having is None or t.roles & having)
        ]


def roles_of(role: str, relations: Iterable[str] = ()) -> frozenset[str]:
    """The roles an actor acts with: its own and its relations to the thing (e.g. ``assignee``)."""
    return frozenset({role, *relations})


def check(table: StateTable, state: str, action: str, *, role: str, relations: Iterable[str] = ()) -> Transition:
    """THE enforcement point: the row that applies, or InvalidInput (422, unknown action with
    ``strict_actions``), IllegalTransition (409, not from this state) or Forbidden (403, role)."""
    roles = roles_of(role, relations)
    if table.strict_actions and action not in table.actions:
        raise InvalidInput(f"action: expected one of {', '.join(table.actions)}; got {action!r}", field="action")
    found = table.find(state, action)
    if found is None:
        if table.offer == "actor":
            allowed = table.allowed(state, roles)
        else:
            allowed = [a for a in table.allowed(state) if a not in table.internal]
        raise IllegalTransition(
            table.illegal.format(action=action, state=state, allowed=", ".join(allowed) or "none"), allowed=allowed
        )
    if not found.roles & roles:
        who = table.who.get(role, f"role {role!r}")
        raise Forbidden(
            table.forbidden.format(who=who, action=action, state=state, roles=", ".join(sorted(found.roles)))
        )
    return found


def markdown(table: StateTable, *, who: str = "who", notes: bool = True) -> str:
    """The table as Markdown, one row per transition (the docs embed it; tests compare)."""
    head = ["from", "action", "to", who] + (["notes"] if notes else [])
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for t in table.transitions:
        cells = [t.from_state, t.action, t.next_state(), ", ".join(sorted(t.roles))] + ([t.note] if notes else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
