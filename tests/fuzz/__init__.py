"""Fuzz tests: generated bodies and headers sent over HTTP to the webhooks the devstack runs."""
