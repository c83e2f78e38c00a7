"""Ingress: ERPNext's signed webhooks verified, turned into envelopes and published."""
