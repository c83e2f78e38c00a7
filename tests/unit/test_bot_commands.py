"""The Telegram bot, every command and conversation, through an in-memory desk and store."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from shared.bot.commands import (
    BOOTSTRAP_CLOSED,
    ERPNEXT_DOWN,
    LINK_FIRST,
    PHOTO_LIMIT_BYTES,
    TEXT_LIMIT,
    BotConfig,
    Reply,
    TelegramBot,
)
from shared.errors import (
    BridgeError,
    PermissionDenied,
    UpstreamRejected,
    UpstreamUnavailable,
)
from shared.servicedesk.ports import DeskFigures, ServiceRequest
from tests.helpers.clocks import SettableClock
from tests.helpers.fakes import InMemoryBotStore, InMemoryServiceDesk, InMemoryTelegramFiles

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BOT = "AcmeFieldBot"

ADMIN, ENGINEER, VIEWER = "admin@example.com", "eng@example.com", "viewer@example.com"
ADMIN_ID, ENGINEER_ID, VIEWER_ID, STRANGER_ID, BOOTSTRAP_ID = 100, 200, 300, 400, 500
GROUP = -100123


# ---- the bot on a small site --------------------------------------------------------------------


@dataclass
class Site:
    desk: InMemoryServiceDesk
    store: InMemoryBotStore
    files: InMemoryTelegramFiles
    clock: SettableClock
    config: BotConfig
    update_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def bot(self) -> TelegramBot:
        """A bot instance; every call gives a new one over the same desk and store."""
        return TelegramBot(
            username=BOT,
            desk=self.desk,
            store=self.store,
            files=self.files,
            clock=self.clock,
            config=self.config,
        )

    def update(
        self, message: dict[str, object], *, sender: int, chat: int | None
    ) -> dict[str, object]:
        chat_id = sender if chat is None else chat
        chat_type = "private" if chat is None else "supergroup"
        return {
            "update_id": next(self.update_ids),
            "message": {
                "message_id": 1,
                "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": chat_type},
                "from": {"id": sender, "is_bot": False, "first_name": "Ana"},
                **message,
            },
        }

    def send(
        self,
        text: str,
        *,
        sender: int = ENGINEER_ID,
        chat: int | None = None,
        bot: TelegramBot | None = None,
    ) -> list[Reply]:
        return (bot or self.bot()).handle(self.update({"text": text}, sender=sender, chat=chat))

    def say(self, text: str, *, sender: int = ENGINEER_ID, chat: int | None = None) -> str:
        """The one reply's text."""
        replies = self.send(text, sender=sender, chat=chat)
        assert len(replies) == 1, replies
        assert len(replies[0].text.encode("utf-16-le")) // 2 <= TEXT_LIMIT
        return replies[0].text

    def send_photo(
        self, sizes: list[dict[str, object]], *, sender: int = ENGINEER_ID
    ) -> list[Reply]:
        return self.bot().handle(self.update({"photo": sizes}, sender=sender, chat=None))


def request(request_id: str, subject: str = "Pump leaks", **overrides: object) -> ServiceRequest:
    fields: dict[str, object] = {
        "id": request_id,
        "subject": subject,
        "status": "Open",
        "priority": "Medium",
        "assigned_to": (ENGINEER,),
        **overrides,
    }
    return ServiceRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def site() -> Site:
    desk = InMemoryServiceDesk(
        requests={"ISS-0001": request("ISS-0001", customer="Blue River Foods")},
        roles={
            ADMIN: frozenset({"System Manager"}),
            ENGINEER: frozenset({"Support Team"}),
            VIEWER: frozenset({"Employee"}),
        },
        names={ADMIN: "Ada Admin", ENGINEER: "Eli <Engineer>", VIEWER: "Vic Viewer"},
    )
    store = InMemoryBotStore()
    store.link(ADMIN_ID, ADMIN)
    store.link(ENGINEER_ID, ENGINEER)
    store.link(VIEWER_ID, VIEWER)
    config = BotConfig(bootstrap_admin_ids=frozenset({BOOTSTRAP_ID}))
    return Site(desk, store, InMemoryTelegramFiles(), SettableClock(NOW), config)


def code_in(text: str) -> str:
    match = re.search(rf"https://t\.me/{BOT}\?start=([A-Za-z0-9_-]+)", text)
    assert match is not None, text
    return match.group(1)


# ---- updates the bot does not answer ------------------------------------------------------------


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 1},
        {"update_id": 1, "edited_message": {"text": "/help", "chat": {"id": 1}, "from": {"id": 1}}},
        {"update_id": 1, "channel_post": {"text": "/help", "chat": {"id": -1001}}},
        {"update_id": 1, "message": {"chat": {"id": 200, "type": "private"}, "from": {"id": 200}}},
        {
            "update_id": 1,
            "message": {"text": "/help", "chat": {"id": 7}, "from": {"id": 7, "is_bot": True}},
        },
        {"update_id": 1, "message": "not an object"},
    ],
)
def test_no_reply_when_update_has_no_message_the_bot_handles(
    site: Site, update: dict[str, object]
) -> None:
    assert site.bot().handle(update) == []


def test_store_failure_propagates_when_firestore_is_down(site: Site) -> None:
    site.store.down = True

    with pytest.raises(UpstreamUnavailable):
        site.send("/my_requests")


# ---- unlinked chats and /help -------------------------------------------------------------------


def test_help_offers_only_start_and_help_when_chat_is_unlinked(site: Site) -> None:
    text = site.say("/help", sender=STRANGER_ID)

    commands = set(re.findall(r"^/(\w+)", text, flags=re.MULTILINE))
    assert commands == {"start", "help"}


@pytest.mark.parametrize(
    "command",
    ["/my_requests", "/request_status ISS-0001", "/new_request", "/analytics", "/link a@b.co"],
)
def test_commands_ask_to_link_first_when_chat_is_unlinked(site: Site, command: str) -> None:
    assert site.say(command, sender=STRANGER_ID) == LINK_FIRST


def test_plain_text_asks_to_link_first_when_chat_is_unlinked(site: Site) -> None:
    assert site.say("hello", sender=STRANGER_ID) == LINK_FIRST


def test_an_unlinked_chat_is_answered_once_every_five_minutes_by_all_instances(
    site: Site,
) -> None:
    assert site.say("/help", sender=STRANGER_ID).startswith("<b>Commands</b>")
    flood = [site.send(f"/my_requests {n}", sender=STRANGER_ID) for n in range(50)]
    assert flood == [[]] * 50  # on any instance: the store remembers the answer
    site.clock.advance(299)
    assert site.send("hello", sender=STRANGER_ID) == []
    site.clock.advance(1)
    assert site.say("hello", sender=STRANGER_ID) == LINK_FIRST
    # Linking is answered at once, and a linked person is never held back.
    code = site.bot().create_link_code(VIEWER, NOW)
    assert "Linked" in site.say(f"/start {code}", sender=STRANGER_ID)
    assert "/my_requests" in site.say("/help", sender=STRANGER_ID)


def test_help_lists_commands_by_role_when_person_is_linked(site: Site) -> None:
    def commands(sender: int) -> set[str]:
        return set(re.findall(r"^/(\w+)", site.say("/help", sender=sender), flags=re.MULTILINE))

    basic = {
        "start",
        "help",
        "my_requests",
        "request_status",
        "new_request",
        "upload_photo",
        "cancel",
    }
    assert commands(VIEWER_ID) == basic
    assert commands(ENGINEER_ID) == basic | {"set_status"}
    assert commands(ADMIN_ID) == basic | {"set_status", "analytics", "link"}  # System Manager


def test_help_still_answers_when_erpnext_is_down(site: Site) -> None:
    site.desk.failure = UpstreamUnavailable("down", service="erpnext")

    text = site.say("/help")

    assert "/my_requests" in text
    assert "/set_status" not in text
    assert "not answering" in text


# ---- account linking ----------------------------------------------------------------------------


def test_chat_is_linked_when_person_opens_the_link_an_admin_made(site: Site) -> None:
    site.store.chats.pop(ENGINEER_ID)
    site.store.users.pop(ENGINEER)

    answer = site.say(f"/link {ENGINEER}", sender=ADMIN_ID)
    code = code_in(answer)
    linked = site.say(f"/start {code}", sender=STRANGER_ID)

    assert "Eli &lt;Engineer&gt;" in answer
    assert len(code) <= 64
    assert "Linked" in linked and ENGINEER in linked
    assert site.store.user_of(STRANGER_ID) == ENGINEER
    assert site.store.chat_of(ENGINEER) == STRANGER_ID
    assert "/my_requests" in site.say("/help", sender=STRANGER_ID)


def test_link_code_refused_when_expired(site: Site) -> None:
    code = code_in(site.say(f"/link {VIEWER}", sender=ADMIN_ID))
    site.clock.now = NOW + timedelta(hours=24, seconds=1)

    answer = site.say(f"/start {code}", sender=STRANGER_ID)

    assert "expired" in answer
    assert site.store.user_of(STRANGER_ID) is None


def test_link_code_refused_when_reused_by_another_chat(site: Site) -> None:
    code = code_in(site.say(f"/link {VIEWER}", sender=ADMIN_ID))
    site.say(f"/start {code}", sender=STRANGER_ID)

    answer = site.say(f"/start {code}", sender=STRANGER_ID + 1)

    assert "already used" in answer
    assert site.store.user_of(STRANGER_ID + 1) is None
    assert site.store.user_of(STRANGER_ID) == VIEWER


def test_link_code_only_reports_the_link_when_the_same_chat_opens_it_again(site: Site) -> None:
    code = code_in(site.say(f"/link {VIEWER}", sender=ADMIN_ID))
    site.say(f"/start {code}", sender=STRANGER_ID)

    answer = site.say(f"/start {code}", sender=STRANGER_ID)

    assert "already linked" in answer
    assert site.store.user_of(STRANGER_ID) == VIEWER


def test_link_code_refused_when_unknown(site: Site) -> None:
    answer = site.say("/start not-a-code", sender=STRANGER_ID)

    assert "don't know this link" in answer
    assert site.store.user_of(STRANGER_ID) is None


def test_link_code_not_spent_when_opened_in_a_group(site: Site) -> None:
    code = code_in(site.say(f"/link {VIEWER}", sender=ADMIN_ID))

    in_group = site.say(f"/start@{BOT} {code}", sender=STRANGER_ID, chat=GROUP)
    in_private = site.say(f"/start {code}", sender=STRANGER_ID)

    assert "private chat" in in_group
    assert "Linked" in in_private


def test_link_refused_when_person_has_no_admin_role(site: Site) -> None:
    answer = site.say(f"/link {VIEWER}", sender=ENGINEER_ID)

    assert "do not allow /link" in answer
    assert site.store.codes == {}


def test_link_refused_when_asked_in_a_group(site: Site) -> None:
    answer = site.say(f"/link@{BOT} {VIEWER}", sender=ADMIN_ID, chat=GROUP)

    assert "private chat" in answer
    assert site.store.codes == {}


@pytest.mark.parametrize("args", ["", "not-an-email", "a@b.co extra"])
def test_link_shows_usage_when_argument_is_not_a_user(site: Site, args: str) -> None:
    answer = site.say(f"/link {args}", sender=ADMIN_ID)

    assert "Usage: /link" in answer and "/help" in answer


def test_link_says_no_user_when_erpnext_has_none(site: Site) -> None:
    answer = site.say("/link ghost@example.com", sender=ADMIN_ID)

    assert "ERPNext has no user ghost@example.com" in answer
    assert site.store.codes == {}


def test_bootstrap_admin_may_link_while_no_admin_is_linked(site: Site) -> None:
    site.store.chats.pop(ADMIN_ID)
    site.store.users.pop(ADMIN)  # linked: the engineer and the viewer, neither an admin
    assert "/link" in site.say("/help", sender=BOOTSTRAP_ID)

    code = code_in(site.say(f"/link {ADMIN}", sender=BOOTSTRAP_ID))
    site.say(f"/start {code}", sender=BOOTSTRAP_ID)

    assert site.store.user_of(BOOTSTRAP_ID) == ADMIN


def test_a_bootstrap_id_does_nothing_once_an_admin_is_linked(site: Site) -> None:
    assert "/link" not in site.say("/help", sender=BOOTSTRAP_ID)

    answer = site.say(f"/link {VIEWER}", sender=BOOTSTRAP_ID)

    assert answer == BOOTSTRAP_CLOSED and site.store.codes == {}


def test_a_linked_bootstrap_id_has_the_roles_of_its_user_only(site: Site) -> None:
    site.store.link(BOOTSTRAP_ID, VIEWER)
    site.store.chats.pop(VIEWER_ID)

    assert "roles do not allow /link" in site.say(f"/link {ADMIN}", sender=BOOTSTRAP_ID)
    assert "/link" not in site.say("/help", sender=BOOTSTRAP_ID)
    assert site.store.codes == {}


def test_operator_code_links_a_chat_when_made_by_create_link_code(site: Site) -> None:
    bot = site.bot()
    code = bot.create_link_code(VIEWER, NOW)

    site.say(f"/start {code}", sender=STRANGER_ID)

    assert bot.deep_link(code) == f"https://t.me/{BOT}?start={code}"
    assert site.store.user_of(STRANGER_ID) == VIEWER


# ---- requests -----------------------------------------------------------------------------------


def test_my_requests_lists_open_requests_assigned_to_me(site: Site) -> None:
    site.desk.requests["ISS-0002"] = request("ISS-0002", "Fix <valve> & seal", priority="High")
    site.desk.requests["ISS-0003"] = request("ISS-0003", "Closed one", status="Closed")
    site.desk.requests["ISS-0004"] = request("ISS-0004", "Someone else's", assigned_to=(VIEWER,))

    text = site.say("/my_requests")

    assert "<b>ISS-0001</b> [Open, Medium] Pump leaks" in text
    assert "<b>ISS-0002</b> [Open, High] Fix &lt;valve&gt; &amp; seal" in text
    assert "ISS-0003" not in text and "ISS-0004" not in text


def test_my_requests_says_so_when_none_is_open(site: Site) -> None:
    assert "No open requests" in site.say("/my_requests", sender=VIEWER_ID)


def test_my_requests_cut_at_a_whole_line_when_list_is_too_long(site: Site) -> None:
    for number in range(2, 502):
        site.desk.requests[f"ISS-{number:04d}"] = request(f"ISS-{number:04d}", "<&>" * 50)

    text = site.say("/my_requests")

    lines = text.split("\n")
    shown = [line for line in lines if line.startswith("<b>ISS-")]
    more = re.fullmatch(r"… and (\d+) more", lines[-1])
    assert more is not None
    assert len(shown) + int(more.group(1)) == 501
    subject = html.escape(("<&>" * 50)[:119] + "…")  # cut before escaping: no entity is split
    assert shown[1:] == [
        f"<b>ISS-{n:04d}</b> [Open, Medium] {subject}" for n in range(2, len(shown) + 1)
    ]


def test_request_status_shows_the_request_escaped(site: Site) -> None:
    site.desk.requests["ISS-0009"] = request(
        "ISS-0009", "<script>alert(1)</script>", customer="A & B <Ltd>", project="PROJ-0001"
    )

    text = site.say("/request_status ISS-0009")

    assert "<b>ISS-0009</b>: &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Status: <b>Open</b>" in text
    assert "Customer: A &amp; B &lt;Ltd&gt;" in text
    assert "<script>" not in text


@pytest.mark.parametrize(
    "command", ["/request_status ISS-0001", "/upload_photo ISS-0001", "/set_status ISS-0001 Closed"]
)
def test_a_request_not_theirs_is_answered_as_one_that_does_not_exist(
    site: Site, command: str
) -> None:
    site.config = BotConfig(status_roles=frozenset({"Employee"}))  # the viewer may set statuses
    status = site.desk.requests["ISS-0001"].status

    answer = site.say(command, sender=VIEWER_ID)  # Employee: not assigned, did not raise it

    assert site.desk.requests["ISS-0001"].status == status
    assert site.store.conversations == {}
    del site.desk.requests["ISS-0001"]
    assert answer == "There is no request ISS-0001." == site.say(command, sender=VIEWER_ID)


@pytest.mark.parametrize(
    "mine",
    [{"assigned_to": (VIEWER,)}, {"raised_by": "Viewer@Example.com"}, {"owner": VIEWER}],
)
def test_a_request_assigned_to_raised_or_created_by_them_is_theirs(
    site: Site, mine: dict[str, object]
) -> None:
    site.desk.requests["ISS-0002"] = request("ISS-0002", "Door", **{"assigned_to": (), **mine})

    assert "Door" in site.say("/request_status ISS-0002", sender=VIEWER_ID)


def test_a_role_that_reads_every_request_sees_any(site: Site) -> None:
    site.desk.requests["ISS-0002"] = request("ISS-0002", "Door", assigned_to=())

    assert "Door" in site.say("/request_status ISS-0002", sender=ENGINEER_ID)  # Support Team
    site.config = BotConfig(read_all_roles=frozenset({"Employee"}))
    assert "Door" in site.say("/request_status ISS-0002", sender=VIEWER_ID)


def test_request_status_says_no_request_when_erpnext_has_none(site: Site) -> None:
    assert site.say("/request_status ISS-9999") == "There is no request ISS-9999."


@pytest.mark.parametrize("args", ["", "ISS-0001 extra", "<b>"])
def test_request_status_shows_usage_when_arguments_are_bad(site: Site, args: str) -> None:
    text = site.say(f"/request_status {args}")

    assert text.startswith("Usage: /request_status ID") and "/help" in text


def test_set_status_changes_the_status_when_role_allows(site: Site) -> None:
    text = site.say("/set_status ISS-0001 on   hold")

    assert text == "<b>ISS-0001</b> is now <b>On Hold</b>."
    assert site.desk.requests["ISS-0001"].status == "On Hold"


def test_set_status_refused_when_role_does_not_allow(site: Site) -> None:
    text = site.say("/set_status ISS-0001 Closed", sender=VIEWER_ID)

    assert "do not allow /set_status" in text
    assert site.desk.requests["ISS-0001"].status == "Open"


def test_set_status_reads_roles_every_time_when_a_role_is_taken_away(site: Site) -> None:
    site.say("/set_status ISS-0001 Replied")
    site.desk.roles[ENGINEER] = frozenset({"Employee"})

    text = site.say("/set_status ISS-0001 Closed")

    assert "do not allow" in text
    assert site.desk.requests["ISS-0001"].status == "Replied"


def test_set_status_lists_valid_statuses_when_status_is_unknown(site: Site) -> None:
    text = site.say("/set_status ISS-0001 <Done>")

    assert (
        text
        == "&lt;Done&gt; is not a status. Use one of: Open, Replied, On Hold, Resolved, Closed."
    )


@pytest.mark.parametrize("args", ["", "ISS-0001"])
def test_set_status_shows_usage_when_arguments_are_missing(site: Site, args: str) -> None:
    assert site.say(f"/set_status {args}").startswith("Usage: /set_status ID STATUS")


def test_set_status_says_no_request_when_erpnext_has_none(site: Site) -> None:
    assert site.say("/set_status ISS-0404 Closed") == "There is no request ISS-0404."


# ---- groups and unknown commands ----------------------------------------------------------------


def test_group_command_answered_in_the_group_when_addressed_to_this_bot(site: Site) -> None:
    replies = site.send(f"/my_requests@{BOT.lower()}", chat=GROUP)

    assert [reply.chat_id for reply in replies] == [GROUP]
    assert "ISS-0001" in replies[0].text


def test_group_command_ignored_when_addressed_to_another_bot(site: Site) -> None:
    assert site.send("/my_requests@OtherBot", chat=GROUP) == []
    assert site.send("/help@OtherBot", chat=GROUP) == []


def test_reply_stays_in_the_forum_topic_when_command_came_from_one(site: Site) -> None:
    update = site.update(
        {"text": "/my_requests", "is_topic_message": True, "message_thread_id": 42},
        sender=ENGINEER_ID,
        chat=GROUP,
    )

    [reply] = site.bot().handle(update)

    assert reply.message_thread_id == 42


def test_unknown_command_answered_with_help_when_in_private(site: Site) -> None:
    assert site.say("/frobnicate now") == "I don't know /frobnicate. /help lists what you can use."


def test_unknown_command_answered_when_addressed_to_this_bot_in_a_group(site: Site) -> None:
    assert "/help" in site.say(f"/frobnicate@{BOT}", chat=GROUP)


def test_unknown_command_ignored_when_bare_in_a_group(site: Site) -> None:
    assert site.send("/frobnicate", chat=GROUP) == []
    assert site.send("just chatting", chat=GROUP) == []


def test_plain_text_points_to_help_when_no_conversation_runs(site: Site) -> None:
    assert "/help" in site.say("hello bot")


# ---- ERPNext errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "answer"),
    [
        (UpstreamUnavailable("timeout", service="erpnext"), ERPNEXT_DOWN),
        (PermissionDenied("403", service="erpnext"), "ERPNext does not allow you to do that."),
        (
            UpstreamRejected("417 <ValidationError>", service="erpnext"),
            "ERPNext refused: 417 &lt;ValidationError&gt;",
        ),
    ],
)
@pytest.mark.parametrize(
    "command", ["/my_requests", "/request_status ISS-0001", "/set_status ISS-0001 Closed"]
)
def test_erpnext_errors_become_friendly_answers(
    site: Site, failure: BridgeError, answer: str, command: str
) -> None:
    site.desk.failure = failure

    assert site.say(command) == answer


# ---- /new_request -------------------------------------------------------------------------------


def test_new_request_created_when_conversation_is_confirmed(site: Site) -> None:
    assert "subject" in site.say("/new_request")
    assert "describe" in site.say("Freezer <alarm>")
    assert "Low, Medium, High, Emergency" in site.say("It beeps & blinks")
    assert "Please answer one of" in site.say("whenever")
    summary = site.say("emergency")
    created = site.say("yes")

    assert "Subject: Freezer &lt;alarm&gt;" in summary and "Priority: Emergency" in summary
    assert created == "Created <b>ISS-0002</b>: Freezer &lt;alarm&gt;."
    assert site.desk.created == [
        {
            "subject": "Freezer <alarm>",
            "description": "It beeps & blinks",
            "priority": "Emergency",
            "by": ENGINEER,
        }
    ]
    assert site.store.conversations == {}


def test_new_request_continued_when_each_answer_reaches_another_instance(site: Site) -> None:
    first, second = site.bot(), site.bot()

    site.send("/new_request", bot=first)
    site.send("Door sensor", bot=second)
    site.send("Stuck open", bot=first)
    site.send("High", bot=second)
    site.send("y", bot=first)

    assert site.desk.created == [
        {"subject": "Door sensor", "description": "Stuck open", "priority": "High", "by": ENGINEER}
    ]


def test_new_request_takes_the_subject_when_given_with_the_command(site: Site) -> None:
    assert "describe" in site.say("/new_request Broken pump")
    site.say("Leaks")
    site.say("Low")
    site.say("yes")

    assert site.desk.created[0]["subject"] == "Broken pump"


def test_new_request_not_created_when_cancelled_or_answered_no(site: Site) -> None:
    site.say("/new_request Broken pump")
    assert "no request was created" in site.say("/cancel")
    site.say("/new_request Broken pump")
    site.say("Leaks")
    site.say("Low")
    assert "no request was created" in site.say("no")

    assert site.desk.created == []
    assert "Nothing to stop" in site.say("/cancel")


def test_new_request_ends_when_abandoned_past_its_lifetime(site: Site) -> None:
    site.say("/new_request Broken pump")
    site.clock.now = NOW + timedelta(hours=1, seconds=1)

    assert "/help" in site.say("Leaks")
    assert site.desk.created == []


def test_new_request_can_be_confirmed_again_when_erpnext_was_down(site: Site) -> None:
    site.say("/new_request Broken pump")
    site.say("Leaks")
    site.say("Low")
    site.desk.failure = UpstreamUnavailable("timeout", service="erpnext")
    assert site.say("yes") == ERPNEXT_DOWN
    site.desk.failure = None

    assert "Created" in site.say("yes")
    assert len(site.desk.created) == 1


@pytest.mark.parametrize(
    ("answer", "reason"), [("x" * 141, "subject under"), ("   ", "subject in one line")]
)
def test_new_request_asks_again_when_subject_is_unusable(
    site: Site, answer: str, reason: str
) -> None:
    site.say("/new_request")

    assert reason in site.say(answer)
    assert "describe" in site.say("Pump")


def test_conversations_of_two_people_in_one_group_stay_apart(site: Site) -> None:
    site.send(f"/new_request@{BOT} Pump A", chat=GROUP, sender=ENGINEER_ID)
    site.send(f"/new_request@{BOT} Pump B", chat=GROUP, sender=ADMIN_ID)
    for sender in (ENGINEER_ID, ADMIN_ID):
        for answer in ("Leaks", "Low", "yes"):
            site.send(answer, chat=GROUP, sender=sender)

    assert [(c["subject"], c["by"]) for c in site.desk.created] == [
        ("Pump A", ENGINEER),
        ("Pump B", ADMIN),
    ]


# ---- /upload_photo ------------------------------------------------------------------------------


def sizes(prefix: str, biggest_bytes: int = 90_000) -> list[dict[str, object]]:
    return [
        {
            "file_id": f"{prefix}-s",
            "file_unique_id": f"{prefix}u-s",
            "width": 90,
            "height": 60,
            "file_size": 1_000,
        },
        {
            "file_id": f"{prefix}-l",
            "file_unique_id": f"{prefix}u-l",
            "width": 1280,
            "height": 853,
            "file_size": biggest_bytes,
        },
        {
            "file_id": f"{prefix}-m",
            "file_unique_id": f"{prefix}u-m",
            "width": 320,
            "height": 213,
            "file_size": 9_000,
        },
    ]


def test_upload_photo_attaches_the_largest_size_when_photo_follows(site: Site) -> None:
    site.files.files = {"p1-l": b"big jpeg", "p2-l": b"second jpeg"}

    assert "Send photos for <b>ISS-0001</b>" in site.say("/upload_photo ISS-0001")
    [first] = site.send_photo(sizes("p1"))
    [second] = site.send_photo(sizes("p2"))
    done = site.say("/done")

    assert first.text == "Photo attached to <b>ISS-0001</b>. Send another, or /done."
    assert "attached" in second.text
    assert site.files.downloads == ["p1-l", "p2-l"]
    assert site.desk.attached == [
        ("ISS-0001", "ISS-0001-p1u-l.jpg", b"big jpeg"),
        ("ISS-0001", "ISS-0001-p2u-l.jpg", b"second jpeg"),
    ]
    assert site.desk.senders == [ENGINEER, ENGINEER]
    assert done == "Done with photos."


def test_a_photo_is_refused_once_the_request_is_no_longer_the_senders(site: Site) -> None:
    site.desk.roles[ENGINEER] = frozenset({"Employee"})  # not a role that reads every request
    site.files.files = {"p1-l": b"jpeg"}
    site.say("/upload_photo ISS-0001")  # assigned to them: allowed
    site.desk.requests["ISS-0001"] = request("ISS-0001", assigned_to=(VIEWER,))

    [reply] = site.send_photo(sizes("p1"))

    assert reply.text == "There is no request ISS-0001." and site.desk.attached == []


def test_upload_photo_attaches_once_when_the_same_photo_comes_again(site: Site) -> None:
    site.files.files = {"p1-l": b"jpeg"}
    site.say("/upload_photo ISS-0001")

    site.send_photo(sizes("p1"))
    [again] = site.send_photo(sizes("p1"))

    assert "already attached" in again.text
    assert len(site.desk.attached) == 1


def test_upload_photo_refused_without_download_when_photo_is_over_20_mb(site: Site) -> None:
    site.say("/upload_photo ISS-0001")

    [reply] = site.send_photo(sizes("p1", biggest_bytes=PHOTO_LIMIT_BYTES + 1))

    assert "over 20 MB" in reply.text
    assert site.files.downloads == [] and site.desk.attached == []


def test_upload_photo_refused_when_downloaded_bytes_are_over_20_mb(site: Site) -> None:
    site.files.files = {"p1-l": b"\0" * (PHOTO_LIMIT_BYTES + 1)}
    site.say("/upload_photo ISS-0001")

    [reply] = site.send_photo(sizes("p1"))

    assert "over 20 MB" in reply.text
    assert site.desk.attached == []


def test_upload_photo_asks_to_resend_when_telegram_download_fails(site: Site) -> None:
    site.files.failure = UpstreamUnavailable("telegram 502", service="telegram")
    site.say("/upload_photo ISS-0001")

    [reply] = site.send_photo(sizes("p1"))

    assert "send it again" in reply.text
    assert site.store.get_conversation(ENGINEER_ID, ENGINEER_ID, now=NOW) is not None


def test_upload_photo_says_no_request_when_erpnext_has_none(site: Site) -> None:
    assert site.say("/upload_photo ISS-0404") == "There is no request ISS-0404."
    assert site.store.conversations == {}


def test_photo_explains_upload_photo_when_no_upload_was_asked(site: Site) -> None:
    [reply] = site.send_photo(sizes("p1"))

    assert "/upload_photo ID" in reply.text
    assert site.files.downloads == []


def test_text_asks_for_a_photo_when_upload_waits_for_one(site: Site) -> None:
    site.say("/upload_photo ISS-0001")

    assert "Send a photo for <b>ISS-0001</b>" in site.say("here it comes")


# ---- /analytics ---------------------------------------------------------------------------------


def test_analytics_shows_the_figures_when_person_is_admin(site: Site) -> None:
    site.desk.desk_figures = DeskFigures(12, 30.25, 12345.5, "USD")

    text = site.say("/analytics", sender=ADMIN_ID)

    assert "Open requests: 12" in text
    assert "Average time to close: 30.2 hours" in text or "30.3 hours" in text
    assert "Invoiced this month: 12,345.50 USD" in text


def test_analytics_says_none_closed_when_no_average_exists(site: Site) -> None:
    site.desk.desk_figures = DeskFigures(0, None, 0.0, "EUR")

    assert "no request was closed" in site.say("/analytics", sender=ADMIN_ID)


def test_analytics_refused_when_person_is_not_admin(site: Site) -> None:
    assert "do not allow /analytics" in site.say("/analytics")
