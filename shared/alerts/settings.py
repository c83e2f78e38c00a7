"""The alerts' settings: the rules, the chats they name, and how messages go out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: erp_webhook's cold start does not pay for them
    from shared.alerts.rules import AlertNames, Rule


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    """Telegram, Twilio and the alert rules; tokens never show in repr."""

    telegram_token: str = field(repr=False)
    telegram_secret: str = field(repr=False)
    """The webhook's secret token: Telegram sends it in X-Telegram-Bot-Api-Secret-Token."""
    bot_username: str
    chats: Mapping[str, int]
    rules: tuple[Rule, ...]
    names: AlertNames
    site_url: str
    telegram_api_url: str | None = None
    """Local runs only: a Telegram stand-in's address (its `/bot` and `/file/bot` under it)."""
    group_window_s: float = 60.0
    budget_s: float = 20.0
    bootstrap_admin_ids: frozenset[int] = frozenset()
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    whatsapp_from: str | None = None
    whatsapp_public_url: str | None = None
    """The WhatsApp webhook's address as Twilio calls it: the signature covers it."""
    twilio_api_url: str | None = None
