"""Inventory: sites, devices, credentials, interfaces, links, dependencies."""
