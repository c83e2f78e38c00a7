"""Alerts: the rules that decide who is told what (pure), Telegram's and WhatsApp's pacing,
and the notifier that queues and drains them."""
