"""The NOC dashboard: server-rendered Jinja2 pages with htmx and server-sent events.

Every page is an ordinary route in the allow-table (api/rbac.py) and goes through the
same `authorize` dependency as the JSON API; a browser authenticates with the session
cookie set by /login, and every unsafe request carries the page's CSRF token."""
