"""Northbound interfaces: the TM Forum Open APIs an operator's OSS/BSS stack talks to.

TMF642 alarms, TMF621 trouble tickets, TMF641 service orders and TMF638 service inventory are
views of faultloop's own domains: every resource module maps a domain row to the TMF
representation and a TMF request to the domain's own operation (the same validation, state
machine and audit), never writing another package's tables. ``hub`` keeps the subscriptions and
the outbox of their events, delivered at least once; ``query`` holds the TMF630 query conventions.
The package sits above the domains and below ``api`` (the routes) and ``faultloop.cmd`` (wiring).
"""
