"""notifier's root: alerts (rules, outbox, drains, digest) and the two bots (Telegram, WhatsApp)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from shared.alerts.settings import AlertSettings
from shared.errors import ConfigurationError
from shared.platform.settings import AdminAccess, Common, EnvReader, ErpNextAccess
from shared.roots.base import Root

if TYPE_CHECKING:
    from shared.adapters.bot_store import FirestoreBotStore
    from shared.adapters.erpnext_servicedesk import ErpNextServiceDesk
    from shared.adapters.telegram import KeptSession, TelegramApi
    from shared.adapters.whatsapp_inbound import FirestoreInboundMessages
    from shared.alerts.notifier import Notifier, PacedReplies
    from shared.alerts.pacing import Limits
    from shared.alerts.ports import WhatsApp
    from shared.bot.commands import TelegramBot
    from shared.bot.webhooks import TelegramWebhook, WhatsAppWebhook
    from shared.platform.runtime import Consumer


@dataclass(frozen=True, slots=True)
class Settings:
    common: Common
    erpnext: ErpNextAccess
    alerts: AlertSettings
    admin: AdminAccess

    @classmethod
    def read(cls, env: EnvReader) -> Settings | None:
        """None when a section could not be read: its problems are noted in `env`."""
        common = Common.read(env)
        erpnext = ErpNextAccess.read(env, required=True)
        alerts = AlertSettings.read(env, common=common, erpnext=erpnext)
        admin = AdminAccess.read(env)
        if erpnext is None or alerts is None:
            return None
        return cls(common, erpnext, alerts, admin)


class NotifierRoot(Root[Settings]):
    @cached_property
    def desk(self) -> ErpNextServiceDesk:
        """ERPNext's service desk: requests, their statuses and reports."""
        from shared.adapters.erpnext_servicedesk import DeskConfig, ErpNextServiceDesk

        return ErpNextServiceDesk(
            self.erpnext, DeskConfig(doctype=self.common.service_request_doctype)
        )

    @cached_property
    def telegram(self) -> TelegramApi:
        from shared.adapters.telegram import TelegramApi

        base = self.settings.alerts.telegram_api_url
        return TelegramApi(
            self.settings.alerts.telegram_token,
            base_url=f"{base}/bot" if base else None,
            base_file_url=f"{base}/file/bot" if base else None,
        )

    @cached_property
    def whatsapp(self) -> WhatsApp | None:
        """Twilio's WhatsApp sender; None when WhatsApp is not configured."""
        from shared.adapters.twilio import WhatsAppSender

        alerts = self.settings.alerts
        if not (alerts.twilio_account_sid and alerts.twilio_auth_token):
            return None
        return WhatsAppSender(
            alerts.twilio_account_sid,
            alerts.twilio_auth_token,
            alerts.whatsapp_from or "",
            base_url=alerts.twilio_api_url,
            status_callback_url=alerts.whatsapp_public_url,
        )

    @cached_property
    def bot_store(self) -> FirestoreBotStore:
        from shared.adapters.bot_store import FirestoreBotStore

        return FirestoreBotStore(self.stores.connection)

    @cached_property
    def alerts(self) -> Notifier:
        from shared.alerts.notifier import AlertDrainer, AlertPlanner, Notifier, NotifierConfig

        alerts = self.settings.alerts
        config = NotifierConfig(
            rules=alerts.rules,
            chats=alerts.chats,
            site_url=alerts.site_url,
            names=alerts.names,
            telegram_limits=self.telegram_limits,
            budget_s=alerts.budget_s,
        )
        return Notifier(
            planner=AlertPlanner(
                config=config, directory=self.directory, links=self.bot_store, desk=self.desk
            ),
            drainer=AlertDrainer(
                outbox=self.stores.alerts,
                lease=self.stores.alert_drain_lease,
                telegram=self.telegram,
                whatsapp=self.whatsapp,
                sessions=self.stores.whatsapp_sessions,
                errors=self.stores.errors,
                config=config,
                owner=self.owner,
                clock=self.clock,
            ),
            desk=self.desk,
            clock=self.clock,
        )

    @cached_property
    def consumer(self) -> Consumer:
        # Alerts act on each event once in whatever order: an older event is not skipped.
        return self.consumer_of("notifier", self.alerts.enqueue, skip_stale=False)

    @cached_property
    def kept_telegram(self) -> KeptSession:
        """The instance's one bot session for the bot's replies and downloads."""
        from shared.adapters.telegram import KeptSession

        return KeptSession(self.telegram)

    @cached_property
    def replies(self) -> PacedReplies:
        """The bot's replies, within the limits the alerts keep (and counted in them)."""
        from shared.alerts.notifier import PacedReplies

        return PacedReplies(
            telegram=self.kept_telegram,
            outbox=self.stores.alerts,
            limits=self.telegram_limits,
            clock=self.clock,
        )

    @cached_property
    def telegram_limits(self) -> Limits:
        from shared.alerts.pacing import Limits

        return Limits(group_window_s=self.settings.alerts.group_window_s)

    @cached_property
    def bot(self) -> TelegramBot:
        from shared.bot.commands import BotConfig, TelegramBot

        alerts = self.settings.alerts
        return TelegramBot(
            username=alerts.bot_username,
            desk=self.desk,
            store=self.bot_store,
            files=self.kept_telegram,
            clock=self.clock,
            config=BotConfig(
                priorities=("Low", "Medium", "High", *alerts.names.emergency_priorities[:1]),
                bootstrap_admin_ids=alerts.bootstrap_admin_ids,
                read_all_roles=alerts.read_all_roles,
            ),
        )

    @cached_property
    def telegram_webhook(self) -> TelegramWebhook:
        from shared.bot.webhooks import TelegramWebhook

        return TelegramWebhook(
            bot=self.bot,
            store=self.bot_store,
            sender=self.replies,
            secret=self.settings.alerts.telegram_secret,
            clock=self.clock,
        )

    @cached_property
    def whatsapp_messages(self) -> FirestoreInboundMessages:
        """The inbound WhatsApp messages answered, by MessageSid."""
        from shared.adapters.whatsapp_inbound import FirestoreInboundMessages

        return FirestoreInboundMessages(self.stores.connection)

    @cached_property
    def whatsapp_webhook(self) -> WhatsAppWebhook:
        """Twilio's webhook: each signed inbound message answered once (a repeat gets no reply
        and leaves the client's window as it was)."""
        from shared.adapters.twilio import signature_valid
        from shared.bot.webhooks import WhatsAppWebhook
        from shared.errors import UpstreamRejected

        alerts = self.settings.alerts
        if not (alerts.twilio_auth_token and alerts.whatsapp_public_url):
            raise ConfigurationError("WhatsApp is not configured (TWILIO_* settings)")

        def on_failed(sid: str, code: str) -> None:
            alert = self.stores.alerts.by_message(sid)
            if alert is not None:
                failure = UpstreamRejected(
                    f"WhatsApp did not deliver it (error {code})", service="twilio"
                )
                self.alerts.drainer.record(alert, failure, now=self.clock())

        return WhatsAppWebhook(
            desk=self.desk,
            sessions=self.stores.whatsapp_sessions,
            messages=self.whatsapp_messages,
            auth_token=alerts.twilio_auth_token,
            public_url=alerts.whatsapp_public_url,
            signature_valid=signature_valid,
            clock=self.clock,
            on_failed=on_failed,
        )


def from_environment() -> NotifierRoot:
    """The root of this instance, from its environment; refuses to start on any bad setting."""
    from shared.roots import start

    return NotifierRoot(start("notifier"))
