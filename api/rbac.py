"""The allow-table: every route, every method, and the roles that may call it.

A route that is not listed is refused with 500 at run time, and a test fails the
build when the app has a route missing from this table.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from faultloop.accounts.models import Role

PUBLIC = frozenset({"*"})
EVERYONE = frozenset(Role)
# every staff role: the service desk sees fault reports and service status, never alarms or tickets;
# the northbound integration role (oss) reaches the TM Forum APIs (/tmf-api/...) and its own tokens only
ALL = EVERYONE - {Role.servicedesk, Role.oss}
SERVICE_DESK = frozenset({Role.admin, Role.noc, Role.servicedesk})
ADMIN = frozenset({Role.admin})
INVENTORY_WRITE = frozenset({Role.admin, Role.noc})
OPERATORS = frozenset({Role.admin, Role.noc})
CONFIG_READERS = frozenset({Role.admin, Role.noc, Role.provisioner})
TICKET_WRITERS = frozenset({Role.admin, Role.noc, Role.technician})  # technicians: own/team tickets only
TECHNICIAN = frozenset({Role.technician})
REPORT_READERS = frozenset({Role.admin, Role.noc, Role.viewer})
ORDER_AUTHORS = frozenset({Role.admin, Role.provisioner})
PROVISIONING = frozenset({Role.admin, Role.noc, Role.provisioner})
BOARD_READERS = frozenset({Role.admin, Role.noc, Role.viewer})
# the TM Forum Open APIs: the integration role and the NOC roles that may do the same in the JSON API
TMF_READERS = frozenset({Role.admin, Role.noc, Role.oss})
TMF_WRITERS = frozenset({Role.admin, Role.noc, Role.oss})
TMF_ORDER_WRITERS = frozenset({Role.admin, Role.provisioner, Role.oss})
# the TMF resources read as in the JSON API: provisioner reads back the serviceOrders it writes, the services
# they make and, as in the JSON API (ALL), alarms and tickets; hub subscriptions and every write stay as above
TMF_RESOURCE_READERS = TMF_READERS | {Role.provisioner}

ALLOW: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,  # Prometheus scrapes; guarded by FAULTLOOP_METRICS_TOKEN when set
    # users and tokens
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users/{username}/disable"): ADMIN,
    ("POST", "/api/v1/users/{username}/enable"): ADMIN,
    ("PUT", "/api/v1/users/{username}/role"): ADMIN,
    ("PUT", "/api/v1/users/{username}/password"): ADMIN,
    ("GET", "/api/v1/users/{username}/tokens"): ADMIN,
    ("DELETE", "/api/v1/users/{username}/tokens"): ADMIN,
    ("GET", "/api/v1/me"): EVERYONE,
    ("GET", "/api/v1/tokens"): EVERYONE,
    ("POST", "/api/v1/tokens"): EVERYONE,
    ("DELETE", "/api/v1/tokens/{token_id}"): EVERYONE,
    ("GET", "/api/v1/audit"): OPERATORS,
    # inventory
    ("GET", "/api/v1/sites"): ALL,
    ("POST", "/api/v1/sites"): INVENTORY_WRITE,
    ("GET", "/api/v1/sites/{site_id}"): ALL,
    ("PUT", "/api/v1/sites/{site_id}"): INVENTORY_WRITE,
    ("DELETE", "/api/v1/sites/{site_id}"): INVENTORY_WRITE,
    ("GET", "/api/v1/devices"): ALL,
    ("POST", "/api/v1/devices"): INVENTORY_WRITE,
    ("GET", "/api/v1/devices/{device_id}"): ALL,
    ("PATCH", "/api/v1/devices/{device_id}"): INVENTORY_WRITE,
    ("DELETE", "/api/v1/devices/{device_id}"): INVENTORY_WRITE,
    ("GET", "/api/v1/devices/{device_id}/interfaces"): ALL,
    ("POST", "/api/v1/devices/{device_id}/interfaces"): INVENTORY_WRITE,
    ("GET", "/api/v1/interfaces/{interface_id}"): ALL,
    ("PATCH", "/api/v1/interfaces/{interface_id}"): INVENTORY_WRITE,
    ("DELETE", "/api/v1/interfaces/{interface_id}"): INVENTORY_WRITE,
    ("GET", "/api/v1/links"): ALL,
    ("POST", "/api/v1/links"): INVENTORY_WRITE,
    ("GET", "/api/v1/links/{link_id}"): ALL,
    ("DELETE", "/api/v1/links/{link_id}"): INVENTORY_WRITE,
    # config backups (text and diffs may hold secrets), CLI results, SSH host keys
    ("GET", "/api/v1/devices/{device_id}/config-backups"): ALL,
    ("POST", "/api/v1/devices/{device_id}/config-backups"): OPERATORS,
    ("GET", "/api/v1/devices/{device_id}/config-backups/{backup_id}"): CONFIG_READERS,
    ("GET", "/api/v1/devices/{device_id}/config-backups/{backup_id}/diff"): CONFIG_READERS,
    ("GET", "/api/v1/devices/{device_id}/cli"): ALL,
    ("GET", "/api/v1/devices/{device_id}/ssh-host-key"): ALL,
    ("POST", "/api/v1/devices/{device_id}/ssh-host-key/accept"): ADMIN,
    # SNMP poller
    ("POST", "/api/v1/devices/{device_id}/poll"): OPERATORS,
    ("GET", "/api/v1/devices/{device_id}/interfaces/status"): ALL,
    ("GET", "/api/v1/devices/{device_id}/samples"): ALL,
    ("PUT", "/api/v1/devices/{device_id}/poll-settings"): OPERATORS,
    # alarms, event ingest, Alertmanager receiver (use a noc token), maintenance windows
    ("GET", "/api/v1/alarms"): ALL,
    ("GET", "/api/v1/alarms/{alarm_id}"): ALL,
    ("GET", "/api/v1/alarms/stream"): ALL,
    ("POST", "/api/v1/alarms/{alarm_id}/ack"): OPERATORS,
    ("POST", "/api/v1/alarms/{alarm_id}/unack"): OPERATORS,
    ("POST", "/api/v1/alarms/{alarm_id}/comments"): OPERATORS,
    ("POST", "/api/v1/alarms/{alarm_id}/clear"): OPERATORS,
    ("PUT", "/api/v1/alarms/{alarm_id}/severity"): OPERATORS,
    ("POST", "/api/v1/events"): OPERATORS,
    ("POST", "/api/v1/alertmanager"): OPERATORS,
    ("GET", "/api/v1/maintenance"): ALL,
    ("POST", "/api/v1/maintenance"): OPERATORS,
    ("GET", "/api/v1/maintenance/{window_id}"): ALL,
    ("DELETE", "/api/v1/maintenance/{window_id}"): OPERATORS,
    # trouble tickets (technicians see and act on their own and their team's tickets only)
    ("GET", "/api/v1/tickets"): ALL,
    ("POST", "/api/v1/tickets"): OPERATORS,
    ("GET", "/api/v1/tickets/{ticket_id}"): ALL,
    ("POST", "/api/v1/tickets/{ticket_id}/transitions"): TICKET_WRITERS,
    ("POST", "/api/v1/tickets/{ticket_id}/notes"): TICKET_WRITERS,
    ("GET", "/api/v1/tickets/{ticket_id}/timeline"): ALL,
    ("GET", "/api/v1/me/tickets"): TECHNICIAN,
    ("POST", "/api/v1/me/tickets/{ticket_id}/accept"): TECHNICIAN,
    ("POST", "/api/v1/me/tickets/{ticket_id}/status"): TECHNICIAN,
    ("POST", "/api/v1/me/tickets/{ticket_id}/notes"): TECHNICIAN,
    ("POST", "/api/v1/me/tickets/{ticket_id}/resolve"): TECHNICIAN,
    ("GET", "/api/v1/technicians"): OPERATORS,
    ("PUT", "/api/v1/technicians/{username}"): OPERATORS,
    ("GET", "/api/v1/reports/tickets/mttr"): REPORT_READERS,
    # customer fault reports (the service desk: customer terms only) and service assurance reports
    ("POST", "/api/v1/fault-reports"): SERVICE_DESK,
    ("GET", "/api/v1/fault-reports"): SERVICE_DESK,
    ("GET", "/api/v1/fault-reports/{ref}"): SERVICE_DESK,
    ("GET", "/api/v1/reports/services"): REPORT_READERS,
    ("GET", "/api/v1/reports/availability"): REPORT_READERS,
    # service activation: the order state table decides per action (four-eyes approve by noc/admin)
    ("GET", "/api/v1/catalog"): ALL,
    ("GET", "/api/v1/catalog/{name}"): ALL,
    ("GET", "/api/v1/orders"): ALL,
    ("POST", "/api/v1/orders"): ORDER_AUTHORS,
    ("GET", "/api/v1/orders/{order_id}"): ALL,
    ("POST", "/api/v1/orders/{order_id}/validate"): ORDER_AUTHORS,
    ("POST", "/api/v1/orders/{order_id}/plan"): ORDER_AUTHORS,
    ("POST", "/api/v1/orders/{order_id}/approve"): OPERATORS,
    ("POST", "/api/v1/orders/{order_id}/execute"): PROVISIONING,
    ("POST", "/api/v1/orders/{order_id}/cancel"): PROVISIONING,
    ("GET", "/api/v1/orders/{order_id}/timeline"): ALL,
    ("GET", "/api/v1/services"): EVERYONE,
    ("GET", "/api/v1/services/{service_id}"): EVERYONE,
    ("GET", "/api/v1/vlan-pools"): ALL,
    ("POST", "/api/v1/vlan-pools"): PROVISIONING,
    # TMF621 trouble tickets (api/routers/tmf_ticket.py): status changes are the state machine's actions
    ("GET", "/tmf-api/troubleTicket/v4/troubleTicket"): TMF_RESOURCE_READERS,
    ("POST", "/tmf-api/troubleTicket/v4/troubleTicket"): TMF_WRITERS,
    ("GET", "/tmf-api/troubleTicket/v4/troubleTicket/{ticket_id}"): TMF_RESOURCE_READERS,
    ("PATCH", "/tmf-api/troubleTicket/v4/troubleTicket/{ticket_id}"): TMF_WRITERS,
    ("POST", "/tmf-api/troubleTicket/v4/listener/troubleTicketStatusChangeEvent"): TMF_WRITERS,  # the ITSM's hub
    ("POST", "/tmf-api/troubleTicket/v4/hub"): TMF_WRITERS,
    ("GET", "/tmf-api/troubleTicket/v4/hub/{subscription_id}"): TMF_READERS,
    ("DELETE", "/tmf-api/troubleTicket/v4/hub/{subscription_id}"): TMF_WRITERS,
    # TMF641 service ordering, TMF638 service inventory (api/routers/tmf_order.py)
    ("GET", "/tmf-api/serviceOrdering/v4/serviceOrder"): TMF_RESOURCE_READERS,
    ("POST", "/tmf-api/serviceOrdering/v4/serviceOrder"): TMF_ORDER_WRITERS,
    ("GET", "/tmf-api/serviceOrdering/v4/serviceOrder/{order_id}"): TMF_RESOURCE_READERS,
    ("POST", "/tmf-api/serviceOrdering/v4/cancelServiceOrder"): TMF_ORDER_WRITERS,
    ("POST", "/tmf-api/serviceOrdering/v4/hub"): TMF_READERS,
    ("GET", "/tmf-api/serviceOrdering/v4/hub/{subscription_id}"): TMF_READERS,
    ("DELETE", "/tmf-api/serviceOrdering/v4/hub/{subscription_id}"): TMF_READERS,
    ("GET", "/tmf-api/serviceInventory/v4/service"): TMF_RESOURCE_READERS,
    ("GET", "/tmf-api/serviceInventory/v4/service/{service_id}"): TMF_RESOURCE_READERS,
    ("POST", "/tmf-api/serviceInventory/v4/hub"): TMF_READERS,
    ("GET", "/tmf-api/serviceInventory/v4/hub/{subscription_id}"): TMF_READERS,
    ("DELETE", "/tmf-api/serviceInventory/v4/hub/{subscription_id}"): TMF_READERS,
    # --- the dashboard (api/web): HTML pages and htmx fragments, same roles as the JSON API ---
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): EVERYONE,
    # alarm console (the landing page) and maintenance windows: api/web/alarms.py, api/web/maintenance.py
    ("GET", "/"): ALL,
    ("GET", "/ui/alarms/rows"): ALL,
    ("GET", "/ui/alarms/{alarm_id}"): ALL,
    ("POST", "/ui/alarms/{alarm_id}/ack"): OPERATORS,
    ("POST", "/ui/alarms/{alarm_id}/comments"): OPERATORS,
    ("POST", "/ui/alarms/{alarm_id}/clear"): OPERATORS,
    ("GET", "/ui/maintenance"): ALL,
    ("POST", "/ui/maintenance"): OPERATORS,
    ("DELETE", "/ui/maintenance/{window_id}"): OPERATORS,
    # topology, devices, config backups: api/web/devices.py
    ("GET", "/ui/topology"): ALL,
    ("GET", "/ui/devices"): ALL,
    ("GET", "/ui/devices/{device_id}"): ALL,
    ("GET", "/ui/devices/{device_id}/config-backups/{backup_id}/diff"): CONFIG_READERS,
    # ticket board, ticket page, technician view: api/web/tickets.py
    ("GET", "/ui/tickets"): BOARD_READERS,
    ("GET", "/ui/tickets/{ticket_id}"): ALL,
    ("POST", "/ui/tickets/{ticket_id}/transitions"): OPERATORS,
    ("POST", "/ui/tickets/{ticket_id}/notes"): TICKET_WRITERS,
    ("GET", "/ui/my/tickets"): TECHNICIAN,
    ("POST", "/ui/my/tickets/{ticket_id}/accept"): TECHNICIAN,
    ("POST", "/ui/my/tickets/{ticket_id}/status"): TECHNICIAN,
    ("POST", "/ui/my/tickets/{ticket_id}/resolve"): TECHNICIAN,
    # provisioning orders: api/web/orders.py
    ("GET", "/ui/orders"): ALL,
    ("GET", "/ui/orders/{order_id}"): ALL,
    # service desk fault reports and service reports: api/web/desk.py
    ("GET", "/ui/fault-reports"): SERVICE_DESK,
    ("POST", "/ui/fault-reports"): SERVICE_DESK,
    ("GET", "/ui/fault-reports/status"): SERVICE_DESK,
    ("GET", "/ui/reports"): REPORT_READERS,
    # customer services with their operational state: api/web/services.py
    ("GET", "/ui/services"): EVERYONE,
    # TMF642 Alarm Management v4: api/routers/tmf_alarm.py
    ("GET", "/tmf-api/alarmManagement/v4/alarm"): TMF_RESOURCE_READERS,
    ("GET", "/tmf-api/alarmManagement/v4/alarm/{alarm_id}"): TMF_RESOURCE_READERS,
    ("PATCH", "/tmf-api/alarmManagement/v4/alarm/{alarm_id}"): TMF_WRITERS,
    ("POST", "/tmf-api/alarmManagement/v4/ackAlarms"): TMF_WRITERS,
    ("POST", "/tmf-api/alarmManagement/v4/unAckAlarms"): TMF_WRITERS,
    ("POST", "/tmf-api/alarmManagement/v4/clearAlarms"): TMF_WRITERS,
    ("POST", "/tmf-api/alarmManagement/v4/commentAlarms"): TMF_WRITERS,
    ("POST", "/tmf-api/alarmManagement/v4/hub"): TMF_WRITERS,
    ("GET", "/tmf-api/alarmManagement/v4/hub/{subscription_id}"): TMF_READERS,
    ("DELETE", "/tmf-api/alarmManagement/v4/hub/{subscription_id}"): TMF_WRITERS,
}


def allowed_roles(method: str, path: str) -> frozenset[str] | None:
    if method == "HEAD":
        method = "GET"
    return ALLOW.get((method, path))


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, including routes of included routers."""
    found: set[tuple[str, str]] = set()
    for ctx in iter_route_contexts(app.routes):
        for method in (ctx.methods or set()) - {"HEAD", "OPTIONS"}:
            found.add((method, str(ctx.path)))
    return found
