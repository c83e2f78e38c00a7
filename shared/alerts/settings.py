"""The alerts' settings: the rules, the chats they name, and how messages go out."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.alerts.rules import AlertNames, Rule, default_rules, parse_rules
from shared.platform.settings import Common, EnvReader, ErpNextAccess
from shared.servicedesk.ports import READ_ALL_ROLES


@dataclass(frozen=True, slots=True)
class AlertSettings:
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
    read_all_roles: frozenset[str] = READ_ALL_ROLES
    """ERPNext roles whose people the bot shows and lets change every request."""
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    whatsapp_from: str | None = None
    whatsapp_public_url: str | None = None
    """The WhatsApp webhook's address as Twilio calls it: the signature covers it."""
    twilio_api_url: str | None = None

    @classmethod
    def read(
        cls, env: EnvReader, *, common: Common, erpnext: ErpNextAccess | None
    ) -> AlertSettings | None:
        before = len(env.problems)
        token = env.secret("TELEGRAM_BOT_TOKEN", "telegram-bot-token")
        webhook_secret = env.secret("TELEGRAM_WEBHOOK_SECRET", "telegram-webhook-secret")
        username = env.text("TELEGRAM_BOT_USERNAME").removeprefix("@")
        if not (token and webhook_secret and username):
            env.problem(
                "TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET (or secrets 'telegram-bot-token', "
                "'telegram-webhook-secret') and TELEGRAM_BOT_USERNAME are all needed"
            )
        elif not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", webhook_secret):
            env.problem(
                "TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z a-z 0-9 _ - (Telegram's rule)"
            )
        chats: dict[str, int] = {}
        try:
            raw = json.loads(env.text("ALERT_CHATS_JSON") or "{}")
            chats = {str(name): int(chat) for name, chat in dict(raw).items()}
        except (ValueError, TypeError):
            env.problem('ALERT_CHATS_JSON must map names to chat ids: {"admins": -100123}')
        names = AlertNames(
            service_request=common.service_request_doctype,
            service_report=common.service_report_doctype,
            report_request_field=env.text("SERVICE_REPORT_REQUEST_FIELD", "service_request"),
            emergency_priorities=env.names("EMERGENCY_PRIORITIES", "Urgent"),
            completed_content_sid=env.optional("WHATSAPP_TEMPLATE_REQUEST_COMPLETED"),
        )
        rules = default_rules(names)
        if env.text("ALERT_RULES_JSON"):
            try:
                rules = parse_rules(env.env["ALERT_RULES_JSON"])
            except ValueError as exc:
                env.problem(f"ALERT_RULES_JSON: {exc}")
        for rule in rules:
            for destination in rule.to:
                name = destination.removeprefix("chat:")
                if destination.startswith("chat:") and name not in chats and not _is_id(name):
                    env.problem(
                        f"alert rule {rule.id} sends to chat {name!r}: add it to ALERT_CHATS_JSON"
                    )
        twilio = (
            env.optional("TWILIO_ACCOUNT_SID"),
            env.secret("TWILIO_AUTH_TOKEN", "twilio-auth-token"),
            env.optional("TWILIO_WHATSAPP_FROM"),
            env.optional("WHATSAPP_WEBHOOK_PUBLIC_URL"),
        )
        if any(twilio) and not all(twilio):
            env.problem(
                "WhatsApp needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN (or secret "
                "'twilio-auth-token'), TWILIO_WHATSAPP_FROM and WHATSAPP_WEBHOOK_PUBLIC_URL together"
            )
        try:
            admin_ids = frozenset(int(part) for part in env.names("TELEGRAM_BOOTSTRAP_ADMIN_IDS"))
        except ValueError:
            env.problem("TELEGRAM_BOOTSTRAP_ADMIN_IDS must be Telegram user ids, comma separated")
            admin_ids = frozenset()
        group_window_s = env.seconds("TELEGRAM_GROUP_WINDOW_SECONDS", 60.0)
        budget_s = env.seconds("NOTIFIER_BUDGET_SECONDS", 20.0)
        if len(env.problems) > before or not (token and webhook_secret):
            return None
        return cls(
            telegram_token=token,
            telegram_secret=webhook_secret,
            bot_username=username,
            chats=chats,
            rules=rules,
            names=names,
            site_url=erpnext.public_url if erpnext else env.text("ERPNEXT_PUBLIC_URL").rstrip("/"),
            telegram_api_url=(env.local_only("TELEGRAM_API_URL") or "").rstrip("/") or None,
            group_window_s=group_window_s,
            budget_s=budget_s,
            bootstrap_admin_ids=admin_ids,
            read_all_roles=frozenset(
                env.names("TELEGRAM_READ_ALL_ROLES", ",".join(sorted(READ_ALL_ROLES)))
            ),
            twilio_account_sid=twilio[0],
            twilio_auth_token=twilio[1],
            whatsapp_from=twilio[2],
            whatsapp_public_url=twilio[3],
            twilio_api_url=(env.local_only("TWILIO_API_URL") or "").rstrip("/") or None,
        )


def _is_id(chat: str) -> bool:
    """A rule may name a chat by its numeric id instead of a name."""
    try:
        int(chat)
    except ValueError:
        return False
    return True
