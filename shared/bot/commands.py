"""The Telegram bot people use in the field: commands and guided conversations answered in HTML.

No SDK here: ERPNext comes through `ServiceDesk`, links, codes and conversations through `BotStore`
(Firestore in production, so any instance continues a conversation), photos through
`TelegramFiles`. `handle` turns one update into replies; the caller sends them.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from shared.bot.ports import BotStore, Conversation, TelegramFiles
from shared.errors import (
    BridgeError,
    NotFound,
    PermissionDenied,
    UpstreamRejected,
    UpstreamUnavailable,
)
from shared.platform import logs
from shared.servicedesk.ports import READ_ALL_ROLES, ServiceDesk, ServiceRequest

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096
"""Telegram's limit for a message text, counted here in UTF-16 units of the HTML we send."""
PHOTO_LIMIT_BYTES = 20 * 1024 * 1024
"""Bots may download files up to 20 MB."""
SUBJECT_CHARS = 140
"""ERPNext's `Data` fields (an Issue's subject) hold 140 characters."""
DESCRIPTION_CHARS = 3000

ERPNEXT_DOWN = "ERPNext is not answering, try again in a minute."
PHOTO_TOO_BIG = "This photo is over 20 MB, more than Telegram lets bots download."
LINK_FIRST = (
    "Link your account first: ask an ERPNext admin for a link to this bot and open it. /help"
)
BOOTSTRAP_CLOSED = (
    "An admin is linked now: ask them for your link. "
    "(Operators: remove TELEGRAM_BOOTSTRAP_ADMIN_IDS, it no longer does anything.)"
)

_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?")
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,139}")
_EMAIL = re.compile(r"[^@\s<>/]{1,64}@[^@\s<>/]{1,190}\.[^@\s<>/]{1,63}")
_REFUSED_CODES = {
    "expired": "This link has expired. Ask an admin for a new one.",
    "used": "This link was already used. Ask an admin for a new one.",
    "unknown": "I don't know this link. Ask an admin for a new one.",
}
_YES = frozenset({"yes", "y"})
_NO = frozenset({"no", "n"})

T = TypeVar("T")


# ---- what the bot needs and gives ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """One message to send, in Telegram's HTML parse mode; `message_thread_id` keeps forum topics."""

    chat_id: int
    text: str
    message_thread_id: int | None = None


@dataclass(frozen=True, slots=True)
class BotConfig:
    """Who may do what, and the choices the bot offers (ERPNext names, as configured there)."""

    status_roles: frozenset[str] = frozenset({"Support Team", "System Manager"})
    """ERPNext roles allowed to /set_status."""
    read_all_roles: frozenset[str] = READ_ALL_ROLES
    """ERPNext roles whose people see and change every request. Anyone else sees and changes
    only requests provably theirs: assigned to them, raised by them, or created by them."""
    admin_roles: frozenset[str] = frozenset({"System Manager"})
    """ERPNext roles allowed to /analytics and /link."""
    statuses: tuple[str, ...] = ("Open", "Replied", "On Hold", "Resolved", "Closed")
    priorities: tuple[str, ...] = ("Low", "Medium", "High", "Emergency")
    link_code_lifetime: timedelta = timedelta(hours=24)
    conversation_lifetime: timedelta = timedelta(hours=1)
    """An abandoned conversation ends this long after its last answer."""
    stranger_reply_every: timedelta = timedelta(minutes=5)
    """An unlinked chat is answered at most once this often: a flood of strangers' messages
    must not spend the limits the alerts need."""
    bootstrap_admin_ids: frozenset[int] = frozenset()
    """Telegram user ids that may /link while their chat is unlinked and no linked person holds
    an admin role: the first admin's way in, closed once that admin is linked."""


# ---- the bot ------------------------------------------------------------------------------------


class _Refusal(Exception):
    """Ends handling with a friendly answer (bad arguments, roles, ERPNext errors)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True, slots=True)
class _Photo:
    file_id: str
    unique_id: str
    file_size: int | None
    pixels: int


@dataclass(frozen=True, slots=True)
class _Message:
    chat_id: int
    sender: int
    private: bool
    thread_id: int | None
    text: str | None
    photos: tuple[_Photo, ...]


@dataclass(frozen=True, slots=True)
class _Command:
    name: str
    addressee: str | None
    args: str


_Handler = Callable[["_Message", str, str], str | None]


class TelegramBot:
    """Answers updates. A person is known by their Telegram user id, which is also the id of their
    private chat with the bot: the chat `/start CODE` links. So a linked person's commands work in
    groups too, and the answer goes to the chat the command came from."""

    def __init__(
        self,
        *,
        username: str,
        desk: ServiceDesk,
        store: BotStore,
        files: TelegramFiles,
        clock: Callable[[], datetime],
        config: BotConfig | None = None,
    ) -> None:
        self._username = username.removeprefix("@")
        self._desk = desk
        self._store = store
        self._files = files
        self._clock = clock
        self._config = config or BotConfig()
        self._commands: dict[str, _Handler] = {
            "my_requests": self._my_requests,
            "request_status": self._request_status,
            "set_status": self._set_status,
            "new_request": self._new_request,
            "upload_photo": self._upload_photo,
            "analytics": self._analytics,
            "link": self._link,
            "cancel": self._cancel,
            "done": self._cancel,
        }

    # -- operators -------------------------------------------------------------------------------

    def create_link_code(self, user: str, now: datetime) -> str:
        """A one-time code linking `user` (the CLI's way to make the first admin's link)."""
        return self._store.create_link_code(user, now=now, lifetime=self._config.link_code_lifetime)

    def deep_link(self, code: str) -> str:
        return f"https://t.me/{self._username}?start={code}"

    # -- updates ---------------------------------------------------------------------------------

    def handle(self, update: Mapping[str, object]) -> list[Reply]:
        """The replies to one update; none for updates the bot does not take part in.

        ERPNext's errors become answers; the store's (our own infrastructure) propagate as the
        error tree, so the webhook answers 503 and Telegram delivers the update again.
        """
        message = _message_of(update)
        if message is None:
            return []
        user = self._store.user_of(message.sender)  # read once: every answer depends on it
        try:
            text = self._answer(message, user)
        except _Refusal as refusal:
            text = refusal.text
        if text is None or not self._may_answer(message, user):
            return []
        return [Reply(message.chat_id, _fit_text(text), message.thread_id)]

    def _may_answer(self, message: _Message, user: str | None) -> bool:
        """Linked people (one who just linked too) and the bootstrap ids always; any other
        unlinked chat once a while."""
        if user is not None or message.sender in self._config.bootstrap_admin_ids:
            return True
        if self._store.user_of(message.sender) is not None:  # linked by this very message
            return True
        return self._store.answer_stranger(
            message.chat_id, now=self._clock(), every=self._config.stranger_reply_every
        )

    def _answer(self, message: _Message, user: str | None) -> str | None:
        if message.text is not None:
            command = _command_of(message.text)
            if command is None:
                return self._on_text(message, message.text, user)
            if (
                command.addressee is not None
                and command.addressee.lower() != self._username.lower()
            ):
                return None  # addressed to another bot in the group
            return self._on_command(message, command, user)
        if message.photos:
            return self._on_photo(message, user)
        return None

    def _on_command(self, message: _Message, command: _Command, user: str | None) -> str | None:
        if command.name in ("start", "help"):
            if command.name == "help":
                return self._help(message, user)
            return self._start(message, user, command.args)
        handler = self._commands.get(command.name)
        if handler is None:
            return _unknown(message, command)
        if user is not None:
            return handler(message, user, command.args)
        if command.name == "link" and message.sender in self._config.bootstrap_admin_ids:
            return self._bootstrap_link(message, command.args)
        return LINK_FIRST

    def _bootstrap_link(self, message: _Message, args: str) -> str:
        if self._bootstrap_open():
            return self._link(message, None, args)
        logs.log_event(log, logging.WARNING, "bootstrap admin id used after an admin linked")
        return BOOTSTRAP_CLOSED

    def _bootstrap_open(self) -> bool:
        """Whether no linked person holds an admin role (read from ERPNext, as every role is)."""
        return not any(
            self._roles(user) & self._config.admin_roles for user in self._store.linked_users()
        )

    def _roles(self, user: str) -> frozenset[str]:
        return self._ask(lambda: self._desk.roles_of(user))

    # -- linking ---------------------------------------------------------------------------------

    def _start(self, message: _Message, user: str | None, args: str) -> str:
        code = args.strip()
        if not code:
            if user is None:
                return "Hello! " + LINK_FIRST
            return f"Hello, you are linked as <b>{html.escape(user)}</b>. /help lists what you can use."
        if not message.private:
            return "Open your link in a private chat with me, not in a group."
        return self._redeem(message, code)

    def _redeem(self, message: _Message, code: str) -> str:
        redemption = self._store.redeem_link_code(code, message.chat_id, now=self._clock())
        logs.log_event(log, logging.INFO, "link code redeemed", outcome=redemption.outcome)
        if redemption.user is None:
            return _REFUSED_CODES.get(redemption.outcome, _REFUSED_CODES["unknown"])
        who = html.escape(redemption.user)
        if redemption.outcome == "repeated":
            return f"This chat is already linked to <b>{who}</b>. /help lists what you can use."
        return f"Linked: this chat now belongs to <b>{who}</b>. /help lists what you can use."

    def _link(self, message: _Message, user: str | None, args: str) -> str:
        """`user` None: a bootstrap id, while no admin is linked (`_on_command` checked)."""
        if not message.private:
            return "Use /link in a private chat with me: a link works for whoever opens it first."
        if user is not None:
            self._require(user, self._config.admin_roles, "/link")
        target = args.strip()
        if not _EMAIL.fullmatch(target):
            return "Usage: /link user@example.com (the person's ERPNext user). /help"
        shown = html.escape(target)
        name = self._ask(
            lambda: self._desk.full_name(target), missing=f"ERPNext has no user {shown}."
        )
        code = self.create_link_code(target, self._clock())
        hours = self._config.link_code_lifetime / timedelta(hours=1)
        logs.log_event(log, logging.INFO, "link code created")
        return (
            f"Link for <b>{html.escape(name)}</b> ({shown}), usable once within {hours:g} hours:\n"
            f"{html.escape(self.deep_link(code))}\n"
            "Send it to them only: whoever opens it first gets their account."
        )

    # -- help and requests -----------------------------------------------------------------------

    def _help(self, message: _Message, user: str | None) -> str:
        lines = ["<b>Commands</b>", "/start - link this chat (open the link an admin sent you)"]
        lines.append("/help - this list")
        if user is None:
            if message.sender in self._config.bootstrap_admin_ids and self._bootstrap_open():
                lines.append("/link user@example.com - a one-time link for an ERPNext user")
            return "\n".join(lines)
        lines += [
            "/my_requests - open requests assigned to you",
            "/request_status ID - a request's status",
            "/new_request - report a new request, step by step",
            "/upload_photo ID - attach photos to a request",
            "/cancel - stop the current step-by-step conversation",
        ]
        try:
            roles = self._ask(lambda: self._desk.roles_of(user))
        except _Refusal:
            roles = frozenset()
            lines.append("(ERPNext is not answering: commands for your roles are not shown.)")
        if roles & self._config.status_roles:
            lines.append(f"/set_status ID STATUS - {html.escape(', '.join(self._config.statuses))}")
        if roles & self._config.admin_roles:
            lines.append("/analytics - open requests, time to close, invoiced this month")
            lines.append("/link user@example.com - a one-time link for an ERPNext user")
        return "\n".join(lines)

    def _my_requests(self, message: _Message, user: str, args: str) -> str:
        requests = self._ask(lambda: self._desk.open_requests_for(user))
        if not requests:
            return "No open requests are assigned to you."
        header = f"<b>Open requests assigned to you ({len(requests)})</b>"
        return _fit_lines(header, [_request_line(request) for request in requests])

    def _request_status(self, message: _Message, user: str, args: str) -> str:
        request_id = _request_id(args, "Usage: /request_status ID, e.g. /request_status ISS-0001.")
        return _request_details(self._request_for(user, request_id))

    def _request_for(self, user: str, request_id: str) -> ServiceRequest:
        """The request, if `user` may see and change it (`BotConfig.read_all_roles`); one that
        is not theirs is answered as one that does not exist, so no answer tells them apart."""
        request = self._ask(lambda: self._desk.request(request_id), missing=_no_request(request_id))
        if user in request.assigned_to or user.casefold() in {
            (request.owner or "").casefold(),
            (request.raised_by or "").casefold(),
        }:
            return request
        if self._roles(user) & self._config.read_all_roles:
            return request
        logs.log_event(log, logging.INFO, "request refused: not the user's", request=request_id)
        raise _Refusal(_no_request(request_id))

    def _set_status(self, message: _Message, user: str, args: str) -> str:
        usage = "Usage: /set_status ID STATUS, e.g. /set_status ISS-0001 Resolved."
        words = args.split(maxsplit=1)
        if len(words) < 2:
            raise _Refusal(usage + " /help")
        request_id = _request_id(words[0], usage)
        self._require(user, self._config.status_roles, "/set_status")
        self._request_for(user, request_id)
        wanted = " ".join(words[1].split()).casefold()
        status = next((s for s in self._config.statuses if s.casefold() == wanted), None)
        if status is None:
            valid = ", ".join(self._config.statuses)
            return f"{html.escape(_short(words[1], 40))} is not a status. Use one of: {html.escape(valid)}."
        request = self._ask(
            lambda: self._desk.set_status(request_id, status), missing=_no_request(request_id)
        )
        logs.log_event(log, logging.INFO, "request status set", request=request.id, status=status)
        return f"<b>{html.escape(request.id)}</b> is now <b>{html.escape(request.status)}</b>."

    def _analytics(self, message: _Message, user: str, args: str) -> str:
        self._require(user, self._config.admin_roles, "/analytics")
        now = self._clock()
        figures = self._ask(lambda: self._desk.figures(now))
        if figures.average_hours_to_close is None:
            average = "no request was closed in the last 30 days"
        else:
            average = f"{figures.average_hours_to_close:,.1f} hours (last 30 days)"
        invoiced = f"{figures.invoiced_this_month:,.2f} {figures.currency}"
        return "\n".join(
            [
                f"<b>Analytics</b> ({now:%Y-%m-%d})",
                f"Open requests: {figures.open_requests}",
                f"Average time to close: {html.escape(average)}",
                f"Invoiced this month: {html.escape(invoiced)}",
            ]
        )

    # -- guided conversations --------------------------------------------------------------------

    def _new_request(self, message: _Message, user: str, args: str) -> str:
        subject = " ".join(args.split())
        if subject:
            self._check_subject(subject)
            self._keep(message, Conversation("new_request", "description", {"subject": subject}))
            return (
                f"Subject: <b>{html.escape(subject)}</b>\nNow describe the problem. /cancel stops."
            )
        self._keep(message, Conversation("new_request", "subject"))
        return "New request. What is the subject (one line)? /cancel stops."

    def _upload_photo(self, message: _Message, user: str, args: str) -> str:
        request_id = _request_id(args, "Usage: /upload_photo ID, e.g. /upload_photo ISS-0001.")
        request = self._request_for(user, request_id)
        self._keep(message, Conversation("upload_photo", "photo", {"request": request.id}))
        return (
            f"Send photos for <b>{html.escape(request.id)}</b> "
            f"({html.escape(_short(request.subject, 80))}). /done when finished."
        )

    def _cancel(self, message: _Message, user: str, args: str) -> str:
        conversation = self._store.get_conversation(
            message.chat_id, message.sender, now=self._clock()
        )
        if conversation is None:
            return "Nothing to stop. /help lists what you can use."
        self._store.clear_conversation(message.chat_id, message.sender)
        if conversation.flow == "upload_photo":
            return "Done with photos."
        return "Stopped: no request was created."

    def _on_text(self, message: _Message, text: str, user: str | None) -> str | None:
        conversation = self._store.get_conversation(
            message.chat_id, message.sender, now=self._clock()
        )
        if conversation is None:
            if not message.private:
                return None  # group chatter is not for the bot
            if user is None:
                return LINK_FIRST
            return "Send a command: /help lists them."
        if user is None:  # unlinked since the conversation began
            self._store.clear_conversation(message.chat_id, message.sender)
            return LINK_FIRST
        if conversation.flow == "upload_photo":
            return f"Send a photo for <b>{html.escape(conversation.values.get('request', ''))}</b>, or /done."
        return self._new_request_step(message, user, conversation, text.strip())

    def _new_request_step(
        self, message: _Message, user: str, conversation: Conversation, answer: str
    ) -> str:
        steps = {
            "subject": self._subject_step,
            "description": self._description_step,
            "priority": self._priority_step,
        }
        step = steps.get(conversation.step, self._confirm_step)
        return step(message, user, dict(conversation.values), answer)

    def _subject_step(
        self, message: _Message, user: str, values: dict[str, str], answer: str
    ) -> str:
        subject = " ".join(answer.split())
        self._check_subject(subject)
        values["subject"] = subject
        self._keep(message, Conversation("new_request", "description", values))
        return "Now describe the problem. /cancel stops."

    def _description_step(
        self, message: _Message, user: str, values: dict[str, str], answer: str
    ) -> str:
        if not answer:
            return "Please describe the problem in a few words."
        if len(answer) > DESCRIPTION_CHARS:
            return f"Please keep the description under {DESCRIPTION_CHARS} characters."
        values["description"] = answer
        self._keep(message, Conversation("new_request", "priority", values))
        return f"Priority? {html.escape(', '.join(self._config.priorities))}"

    def _priority_step(
        self, message: _Message, user: str, values: dict[str, str], answer: str
    ) -> str:
        wanted = answer.casefold()
        priority = next((p for p in self._config.priorities if p.casefold() == wanted), None)
        if priority is None:
            return f"Please answer one of: {html.escape(', '.join(self._config.priorities))}"
        values["priority"] = priority
        self._keep(message, Conversation("new_request", "confirm", values))
        return "\n".join(
            [
                "<b>Create this request?</b>",
                f"Subject: {html.escape(values.get('subject', ''))}",
                f"Description: {html.escape(_short(values.get('description', ''), 1000))}",
                f"Priority: {html.escape(priority)}",
                "Answer yes or no.",
            ]
        )

    def _confirm_step(
        self, message: _Message, user: str, values: dict[str, str], answer: str
    ) -> str:
        if answer.casefold() in _NO:
            self._store.clear_conversation(message.chat_id, message.sender)
            return "Stopped: no request was created."
        if answer.casefold() not in _YES:
            return "Please answer yes or no (or /cancel)."
        created = self._ask(
            lambda: self._desk.create_request(
                subject=values.get("subject", ""),
                description=values.get("description", ""),
                priority=values.get("priority", ""),
                raised_by=user,
            )
        )
        # Cleared only once ERPNext has the request: after an ERPNext error "yes" tries again.
        self._store.clear_conversation(message.chat_id, message.sender)
        logs.log_event(log, logging.INFO, "request created", request=created.id)
        subject = html.escape(_short(created.subject, 300))
        return f"Created <b>{html.escape(created.id)}</b>: {subject}."

    def _on_photo(self, message: _Message, user: str | None) -> str | None:
        conversation = self._store.get_conversation(
            message.chat_id, message.sender, now=self._clock()
        )
        if conversation is None or conversation.flow != "upload_photo":
            if message.private:
                return "To attach a photo, send /upload_photo ID first."
            return None
        if user is None:
            return LINK_FIRST
        return self._attach_photo(message, user, conversation)

    def _attach_photo(self, message: _Message, user: str, conversation: Conversation) -> str:
        request_id = conversation.values.get("request", "")
        self._request_for(user, request_id)  # still theirs: assignments change
        photo = max(message.photos, key=lambda size: (size.pixels, size.file_size or 0))
        attached = conversation.values.get("attached", "").split()
        if photo.unique_id in attached:  # the same photo again (a redelivery): attached once
            return f"This photo is already attached to <b>{html.escape(request_id)}</b>."
        if photo.file_size is not None and photo.file_size > PHOTO_LIMIT_BYTES:
            raise _Refusal(PHOTO_TOO_BIG)
        try:
            content = self._files.download(photo.file_id)
        except BridgeError:
            raise _Refusal(
                "I could not fetch the photo from Telegram. Please send it again."
            ) from None
        if len(content) > PHOTO_LIMIT_BYTES:
            raise _Refusal(PHOTO_TOO_BIG)
        filename = f"{_safe_name(request_id)}-{_safe_name(photo.unique_id)}.jpg"
        self._ask(
            lambda: self._desk.attach_file(request_id, filename, content, sent_by=user),
            missing=_no_request(request_id),
        )
        values = {**conversation.values, "attached": " ".join([*attached, photo.unique_id])}
        self._keep(message, Conversation("upload_photo", "photo", values))
        logs.log_event(log, logging.INFO, "photo attached", request=request_id)
        return f"Photo attached to <b>{html.escape(request_id)}</b>. Send another, or /done."

    # -- shared steps ----------------------------------------------------------------------------

    def _keep(self, message: _Message, conversation: Conversation) -> None:
        self._store.put_conversation(
            message.chat_id,
            message.sender,
            conversation,
            now=self._clock(),
            lifetime=self._config.conversation_lifetime,
        )

    def _check_subject(self, subject: str) -> None:
        if not subject:
            raise _Refusal("Please give the subject in one line.")
        if len(subject) > SUBJECT_CHARS:
            raise _Refusal(f"Please keep the subject under {SUBJECT_CHARS} characters.")

    def _require(self, user: str, allowed: frozenset[str], command: str) -> None:
        """Roles are read from ERPNext on every use: a role taken away there counts at once."""
        roles = self._ask(
            lambda: self._desk.roles_of(user), missing=f"ERPNext has no user {html.escape(user)}."
        )
        if not roles & allowed:
            raise _Refusal(f"Your ERPNext roles do not allow {command}.")

    def _ask(self, call: Callable[[], T], *, missing: str = "ERPNext has no such document.") -> T:
        """Call the desk; its errors become friendly answers (their messages name no secret)."""
        try:
            return call()
        except NotFound:
            raise _Refusal(missing) from None
        except PermissionDenied:
            raise _Refusal("ERPNext does not allow you to do that.") from None
        except UpstreamUnavailable:
            raise _Refusal(ERPNEXT_DOWN) from None
        except UpstreamRejected as exc:
            raise _Refusal(f"ERPNext refused: {html.escape(_short(exc.message, 300))}") from None
        except BridgeError:
            log.exception("service desk call failed")
            raise _Refusal("Something went wrong talking to ERPNext. Try again later.") from None


# ---- parsing updates ----------------------------------------------------------------------------


def _message_of(update: Mapping[str, object]) -> _Message | None:
    """The new message of an update, if it is one the bot answers (edits, posts, joins: no)."""
    message = update.get("message")
    if not isinstance(message, Mapping):
        return None
    chat = message.get("chat")
    sender = message.get("from")
    if not isinstance(chat, Mapping) or not isinstance(sender, Mapping):
        return None
    chat_id, sender_id = chat.get("id"), sender.get("id")
    if not isinstance(chat_id, int) or not isinstance(sender_id, int) or sender.get("is_bot"):
        return None
    thread = message.get("message_thread_id") if message.get("is_topic_message") else None
    text = message.get("text")
    return _Message(
        chat_id=chat_id,
        sender=sender_id,
        private=chat.get("type") == "private",
        thread_id=thread if isinstance(thread, int) else None,
        text=text if isinstance(text, str) else None,
        photos=_photos_of(message.get("photo")),
    )


def _photos_of(sizes: object) -> tuple[_Photo, ...]:
    if not isinstance(sizes, Sequence) or isinstance(sizes, str):
        return ()
    photos = []
    for size in sizes:
        if not isinstance(size, Mapping):
            continue
        file_id, unique_id = size.get("file_id"), size.get("file_unique_id")
        width, height, file_size = size.get("width"), size.get("height"), size.get("file_size")
        if not isinstance(file_id, str) or not isinstance(unique_id, str):
            continue
        pixels = width * height if isinstance(width, int) and isinstance(height, int) else 0
        photos.append(
            _Photo(file_id, unique_id, file_size if isinstance(file_size, int) else None, pixels)
        )
    return tuple(photos)


def _command_of(text: str) -> _Command | None:
    """`/cmd@bot args` -> the command; text that does not start with '/' is not one."""
    if not text.startswith("/"):
        return None
    head, *rest = text.split(None, 1)
    args = rest[0] if rest else ""
    match = _COMMAND.fullmatch(head)
    if match is None:
        return _Command(name=_short(head[1:], 32), addressee=None, args=args)
    return _Command(name=match.group(1).lower(), addressee=match.group(2), args=args)


def _unknown(message: _Message, command: _Command) -> str | None:
    if not message.private and command.addressee is None:
        return None  # in a group a bare /cmd may be meant for another bot
    return f"I don't know /{html.escape(command.name)}. /help lists what you can use."


def _request_id(args: str, usage: str) -> str:
    words = args.split()
    if len(words) != 1 or not _REQUEST_ID.fullmatch(words[0]):
        raise _Refusal(f"{usage} /help")
    return words[0]


# ---- writing answers ----------------------------------------------------------------------------


def _no_request(request_id: str) -> str:
    return f"There is no request {html.escape(request_id)}."


def _request_line(request: ServiceRequest) -> str:
    return (
        f"<b>{html.escape(request.id)}</b> [{html.escape(request.status)}, "
        f"{html.escape(request.priority)}] {html.escape(_short(request.subject, 120))}"
    )


def _request_details(request: ServiceRequest) -> str:
    lines = [
        f"<b>{html.escape(request.id)}</b>: {html.escape(_short(request.subject, 500))}",
        f"Status: <b>{html.escape(request.status)}</b>",
        f"Priority: {html.escape(request.priority)}",
    ]
    if request.customer:
        lines.append(f"Customer: {html.escape(_short(request.customer, 200))}")
    if request.project:
        lines.append(f"Project: {html.escape(_short(request.project, 200))}")
    if request.assigned_to:
        assigned = ", ".join(request.assigned_to)
        lines.append(f"Assigned to: {html.escape(_short(assigned, 500))}")
    if request.opened is not None:
        lines.append(f"Opened: {request.opened:%Y-%m-%d %H:%M}")
    if request.resolved is not None:
        lines.append(f"Resolved: {request.resolved:%Y-%m-%d %H:%M}")
    return "\n".join(lines)


def _short(value: str, limit: int) -> str:
    """Cut plain text (before escaping, so no entity or tag is ever cut)."""
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fit_lines(header: str, lines: Sequence[str]) -> str:
    """Header and whole lines within Telegram's limit; what does not fit is counted at the end."""
    text = "\n".join([header, *lines])
    if _units(text) <= TEXT_LIMIT:
        return text
    kept, used = [header], _units(header)
    for index, line in enumerate(lines):
        left_after = len(lines) - index - 1
        room = used + 1 + _units(line) + 1 + _units(_more(left_after))
        if room > TEXT_LIMIT:
            kept.append(_more(len(lines) - index))
            break
        kept.append(line)
        used += 1 + _units(line)
    return "\n".join(kept)


def _more(count: int) -> str:
    return f"… and {count} more"


def _fit_text(text: str) -> str:
    """Last guard: answers are built to fit; should one not, cut at a line, never inside a tag."""
    if _units(text) <= TEXT_LIMIT:
        return text
    lines = text.split("\n")
    if _units(lines[0]) > TEXT_LIMIT:
        return "This answer is too long for Telegram."
    return _fit_lines(lines[0], lines[1:])


def _safe_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", value).strip("-")[:80] or "photo"
