"""HTTP API: FastAPI app, routers per domain, auth dependencies, RBAC allow-table."""
