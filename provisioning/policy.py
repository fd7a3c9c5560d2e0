"""The order state machine: one table, enforced in one function.

    draft -> validated -> planned -> approved -> executing -> verifying -> completed
                                                                        -> rolled_back | failed
    cancel: from draft, validated, planned, approved

``system`` actions are taken by the executor only, never through the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from faultloop.errors import Conflict, Forbidden

STATES = (
    "draft",
    "validated",
    "planned",
    "approved",
    "executing",
    "verifying",
    "completed",
    "rolled_back",
    "failed",
    "cancelled",
)
FINAL = frozenset({"completed", "rolled_back", "failed", "cancelled"})
ACTIVE = frozenset({"executing", "verifying"})

AUTHORS = frozenset({"provisioner", "admin"})
APPROVERS = frozenset({"noc", "admin"})
EXECUTORS = frozenset({"provisioner", "noc", "admin"})
SYSTEM = frozenset({"system"})


class IllegalTransition(Conflict):
    """409 with the actions the order's state allows (``allowed_actions`` in the problem body)."""

    def __init__(self, detail: str, *, allowed: list[str]) -> None:
        super().__init__(detail, field="action")
        self.problem_extra = {"allowed_actions": allowed}


@dataclass(frozen=True)
class Transition:
    source: str
    action: str
    target: str
    roles: frozenset[str]


TRANSITIONS: tuple[Transition, ...] = (
    Transition("draft", "validate", "validated", AUTHORS),
    Transition("validated", "validate", "validated", AUTHORS),
    Transition("draft", "plan", "planned", AUTHORS),
    Transition("validated", "plan", "planned", AUTHORS),
    Transition("planned", "plan", "planned", AUTHORS),
    Transition("planned", "approve", "approved", APPROVERS),
    Transition("approved", "execute", "executing", EXECUTORS | SYSTEM),
    Transition("executing", "pushed", "verifying", SYSTEM),
    Transition("executing", "fail", "failed", SYSTEM),
    Transition("executing", "roll_back", "rolled_back", SYSTEM),
    Transition("verifying", "complete", "completed", SYSTEM),
    Transition("verifying", "roll_back", "rolled_back", SYSTEM),
    Transition("verifying", "fail", "failed", SYSTEM),
    Transition("draft", "cancel", "cancelled", AUTHORS | APPROVERS),
    Transition("validated", "cancel", "cancelled", AUTHORS | APPROVERS),
    Transition("planned", "cancel", "cancelled", AUTHORS | APPROVERS),
    Transition("approved", "cancel", "cancelled", AUTHORS | APPROVERS),
)


def allowed_actions(state: str, role: str | None = None) -> list[str]:
    return sorted({t.action for t in TRANSITIONS if t.source == state and (role is None or role in t.roles)})


def transition(state: str, action: str, *, role: str, actor: str, author: str, four_eyes: bool) -> str:
    """The next state, or Conflict (illegal here; lists what is allowed) / Forbidden (role, four-eyes)."""
    found = next((t for t in TRANSITIONS if t.source == state and t.action == action), None)
    if found is None:
        allowed = [a for a in allowed_actions(state) if a not in {"pushed", "fail", "roll_back", "complete"}]
        raise IllegalTransition(
            f"action {action!r} is not allowed on an order in state {state!r}; allowed: {', '.join(allowed) or 'none'}",
            allowed=allowed,
        )
    if role not in found.roles:
        raise Forbidden(f"role {role!r} may not {action} an order (allowed: {', '.join(sorted(found.roles))})")
    if action == "approve" and four_eyes and actor == author:
        raise Forbidden("four-eyes: an order must be approved by someone other than its author")
    return found.target


def table_markdown() -> str:
    """The table for the docs."""
    rows = ["| from | action | to | roles |", "| --- | --- | --- | --- |"]
    rows += [f"| {t.source} | {t.action} | {t.target} | {', '.join(sorted(t.roles))} |" for t in TRANSITIONS]
    return "\n".join(rows) + "\n"
