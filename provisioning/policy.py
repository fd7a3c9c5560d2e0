"""The order state machine: one table, enforced in one function.

    draft -> validated -> planned -> approved -> executing -> verifying -> completed
                                                                        -> rolled_back | failed
    cancel: from draft, validated, planned, approved

``system`` actions are taken by the executor only, never through the API. The table is
data (``ORDERS``), enforced by ``faultloop.statemachine.check`` like the tickets' one.
"""

from __future__ import annotations

from faultloop import statemachine
from faultloop.errors import Forbidden
from faultloop.statemachine import StateTable, Transition, roles_of

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

# oss: the northbound integration user places orders (TMF641) like a provisioner; noc/admin approve
AUTHORS = frozenset({"provisioner", "admin", "oss"})
APPROVERS = frozenset({"noc", "admin"})
EXECUTORS = frozenset({"provisioner", "noc", "admin"})
SYSTEM = frozenset({"system"})


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

ORDERS = StateTable(
    states=STATES,
    transitions=TRANSITIONS,
    actions=tuple(sorted({t.action for t in TRANSITIONS})),
    illegal="action {action!r} is not allowed on an order in state {state!r}; allowed: {allowed}",
    forbidden="{who} may not {action} an order (allowed: {roles})",
    # a refusal lists what the state allows anyone but the executor's own steps
    offer="state",
    internal=frozenset({"pushed", "fail", "roll_back", "complete"}),
)


def allowed_actions(state: str, role: str | None = None) -> list[str]:
    return ORDERS.allowed(state, None if role is None else roles_of(role))


def transition(state: str, action: str, *, role: str, actor: str, author: str, four_eyes: bool) -> str:
    """The next state, or IllegalTransition (409, lists what is allowed) / Forbidden (role, four-eyes)."""
    found = statemachine.check(ORDERS, state, action, role=role)
    if action == "approve" and four_eyes and actor == author:
        raise Forbidden("four-eyes: an order must be approved by someone other than its author")
    return found.next_state()


def table_markdown() -> str:
    """The table for the docs (the README embeds it; a test compares)."""
    return statemachine.markdown(ORDERS, who="roles", notes=False)


# Roles that may read device configuration text (stored backups, the context of a planned diff):
# the same set as api.rbac.CONFIG_READERS, which guards the backup routes.
CONFIG_READERS = frozenset({"admin", "noc", "provisioner"})


def reads_config(role: str | None) -> bool:
    """None is the CLI operator (role admin)."""
    return role is None or role in CONFIG_READERS
