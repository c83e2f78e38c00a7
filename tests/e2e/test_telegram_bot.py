"""The Telegram bot end to end: updates posted by the Telegram stand-in to the real webhook
function, answers read in the stand-in's chats, effects read in the ERPNext stand-in and Drive.

People (Telegram user id = their private chat): Ana (System Manager, a PM), Dana (Support Team,
an engineer), Ben (a PM, no right to change statuses). Ana is the bootstrap admin.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devstack.emulators import Emulators
from devstack.erpnext import ErpNextStandIn
from devstack.stack import BOT_USERNAME, CHATS, TELEGRAM_WEBHOOK, Devstack, running_devstack
from devstack.waiting import wait_until
from shared.adapters.bot_store import FirestoreBotStore
from tests.e2e import settle

SECRET = "e2e-bot-webhook-secret"
ANA, DANA, BEN, STRANGER = 4001, 4004, 4002, 4999
SECOND_BOOTSTRAP = 4998
"""Also a bootstrap admin id, never linked: its power ends once Ana, an admin, is linked."""
GROUP = CHATS["service_team"]
_updates = itertools.count(1)
_messages = itertools.count(1)


@pytest.fixture(scope="module")
def stack(emulators: Emulators) -> Iterator[Devstack]:
    extra = {"TELEGRAM_BOOTSTRAP_ADMIN_IDS": f"{ANA},{SECOND_BOOTSTRAP}"}
    with running_devstack(
        webhook_secret=SECRET, extra_env=extra, project="e2e-telegram", emulators=emulators
    ) as running:
        erp = running.erpnext
        url = running.webhook_url
        erp.add_bridge_webhook("Issue", "after_insert", url, SECRET)
        erp.add_bridge_webhook(
            "File",
            "after_insert",
            url,
            SECRET,
            era="develop",
            request_structure="form",
        )
        yield running


def update(
    person: int, text: str | None = None, *, chat: int | None = None, **extra: object
) -> dict[str, object]:
    chat_id = person if chat is None else chat
    message: dict[str, object] = {
        "message_id": next(_messages),
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
        "from": {"id": person, "is_bot": False, "first_name": f"Person {person}"},
        **extra,
    }
    if text is not None:
        message["text"] = text
    return {"update_id": next(_updates), "message": message}


def say(stack: Devstack, person: int, text: str, *, chat: int | None = None) -> str:
    """A person writes to the bot; the bot's answer in that chat (the webhook sends it first)."""
    telegram = stack.telegram
    where = person if chat is None else chat
    before = len(telegram.chats[where])
    response = telegram.post_update(update(person, text, chat=chat))
    assert response.status_code == 200, response.text
    answers = telegram.texts(where)[before:]
    assert len(answers) == 1, answers
    return answers[0]


def link(stack: Devstack, user: str, person: int) -> None:
    answer = say(stack, ANA, f"/link {user}")
    code = re.search(r"start=([A-Za-z0-9_-]+)", answer)
    assert code is not None, answer
    assert f"t.me/{BOT_USERNAME}?start=" in answer
    assert "Linked" in say(stack, person, f"/start {code.group(1)}")


@pytest.fixture(scope="module")
def people(stack: Devstack) -> Devstack:
    """Ana links herself as the bootstrap admin, then links Dana and Ben."""
    link(stack, "ana.lopez@example.com", ANA)
    link(stack, "dana.kim@example.com", DANA)
    link(stack, "ben.okafor@example.com", BEN)
    return stack


def issue_named(erp: ErpNextStandIn, subject: str) -> dict[str, object]:
    (issue,) = [doc for doc in erp.all("Issue") if doc.get("subject") == subject]
    return issue


def test_a_wrong_secret_token_is_refused_and_nothing_answers(stack: Devstack) -> None:
    telegram = stack.telegram
    response = telegram.post_update(update(ANA, "/help"), secret="not-the-secret")
    assert response.status_code == 403
    response = telegram.post_update(update(ANA, "/help"), secret="")
    assert response.status_code == 403
    assert telegram.texts(ANA) == []


def silent(stack: Devstack, person: int, text: str) -> bool:
    """A person writes; the bot takes the update (200) and answers nothing."""
    before = len(stack.telegram.chats[person])
    response = stack.telegram.post_update(update(person, text))
    return response.status_code == 200 and len(stack.telegram.chats[person]) == before


def test_unlinked_chats_get_only_start_and_help_once_in_five_minutes(stack: Devstack) -> None:
    assert "/start" in say(stack, STRANGER, "/help")
    assert silent(stack, STRANGER, "/my_requests")
    assert "Link your account first" in say(stack, STRANGER + 10, "/my_requests")


def test_link_codes_work_once_and_not_after_they_expire(people: Devstack) -> None:
    stack = people
    answer = say(stack, ANA, "/link chen.wei@example.com")
    code = re.search(r"start=([A-Za-z0-9_-]+)", answer)
    assert code is not None
    assert "Linked" in say(stack, 4003, f"/start {code.group(1)}")
    assert "already used" in say(stack, 4997, f"/start {code.group(1)}")
    assert silent(stack, 4997, "/my_requests")  # unlinked, and answered a moment ago
    # A code made yesterday with an hour to live, as the store keeps it.
    store = FirestoreBotStore(stack.stores().connection)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    stale = store.create_link_code(
        "eli.moreau@example.com", now=yesterday, lifetime=timedelta(hours=1)
    )
    assert "expired" in say(stack, 4005, f"/start {stale}")
    assert silent(stack, 4005, "/my_requests")


def test_an_instance_keeps_one_bot_session_for_its_replies(people: Devstack) -> None:
    say(people, DANA, "/help")  # the instance's session is open from here on
    opened = people.telegram.calls["getMe"]
    for _ in range(3):
        say(people, DANA, "/help")
    assert people.telegram.calls["getMe"] == opened


def test_the_same_update_delivered_twice_is_answered_once(people: Devstack) -> None:
    telegram = people.telegram
    before = len(telegram.chats[DANA])
    again = update(DANA, "/help")
    assert telegram.post_update(again).status_code == 200
    assert telegram.post_update(again).status_code == 200
    assert len(telegram.chats[DANA]) == before + 1


def test_an_update_the_bridge_could_not_take_comes_again_and_is_answered_once(
    people: Devstack,
) -> None:
    """Telegram throttles the bot's answer for longer than an answer may wait (429, retry_after
    30): the webhook answers 503, so Telegram keeps the update and sends it again later (the
    stand-in's `redeliver`); the bot answers it then, once, and Telegram has nothing left."""
    telegram = people.telegram
    before = len(telegram.chats[DANA])
    asked = update(DANA, "/my_requests")
    telegram.throttle_next(DANA, retry_after=30)
    assert telegram.post_update(asked).status_code == 503
    assert len(telegram.chats[DANA]) == before
    (again,) = telegram.redeliver()
    assert again is not None and again.status_code == 200
    assert telegram.redeliver() == []
    (answer,) = telegram.texts(DANA)[before:]
    assert "Hydraulic leak" in answer
    tried = [status for update_id, status in telegram.deliveries if update_id == asked["update_id"]]
    assert tried == [503, 200]


def test_requests_assigned_to_me_and_their_status(people: Devstack) -> None:
    erp = people.erpnext
    mine = say(people, DANA, "/my_requests")
    leak = issue_named(erp, "Hydraulic leak at the loading bay")
    assert str(leak["name"]) in mine and "Hydraulic leak" in mine
    assert "Reception door" not in mine  # Eli's
    status = say(people, DANA, f"/request_status {leak['name']}")
    assert "Open" in status and "Hydraulic leak" in status
    assert "no request" in say(people, DANA, "/request_status ISS-NOPE-1").lower()


def test_a_request_that_is_not_theirs_is_a_request_that_does_not_exist(people: Devstack) -> None:
    # Ben is a Projects Manager: no role that reads every request, and the leak is Dana's.
    erp = people.erpnext
    leak = str(issue_named(erp, "Hydraulic leak at the loading bay")["name"])
    unknown = say(people, BEN, "/request_status ISS-NOPE-2").replace("ISS-NOPE-2", leak)
    assert say(people, BEN, f"/request_status {leak}") == unknown
    assert say(people, BEN, f"/upload_photo {leak}") == unknown
    assert "Hydraulic leak" not in say(people, BEN, "/my_requests")
    # What Ben raises himself is his.
    say(people, BEN, "/new_request Gate sensor faulty")
    say(people, BEN, "The car park gate does not open")
    say(people, BEN, "Low")
    assert "Created" in say(people, BEN, "yes")
    gate = str(issue_named(erp, "Gate sensor faulty")["name"])
    assert "Gate sensor faulty" in say(people, BEN, f"/request_status {gate}")


def test_a_bootstrap_id_does_nothing_once_an_admin_is_linked(people: Devstack) -> None:
    answer = say(people, SECOND_BOOTSTRAP, "/link ben.okafor@example.com")
    assert "An admin is linked now" in answer and "start=" not in answer
    assert "/link" not in say(people, SECOND_BOOTSTRAP, "/help")


def test_set_status_is_for_allowed_roles_only(people: Devstack) -> None:
    erp = people.erpnext
    door = issue_named(erp, "Reception door closer broken")
    name = str(door["name"])
    refused = say(people, BEN, f"/set_status {name} Resolved")
    assert "roles do not allow /set_status" in refused
    assert erp.get("Issue", name)["status"] == "On Hold"
    bad = say(people, DANA, f"/set_status {name} Finished")
    assert "Resolved" in bad  # names the valid ones
    done = say(people, DANA, f"/set_status {name} Replied")
    assert "Replied" in done
    assert erp.get("Issue", name)["status"] == "Replied"


def test_group_commands_come_addressed_to_the_bot(people: Devstack) -> None:
    answer = say(people, DANA, f"/my_requests@{BOT_USERNAME}", chat=GROUP)
    assert "Hydraulic leak" in answer
    telegram = people.telegram
    before = len(telegram.chats[GROUP])
    response = telegram.post_update(update(DANA, "/my_requests@some_other_bot", chat=GROUP))
    assert response.status_code == 200
    assert len(telegram.chats[GROUP]) == before


def test_an_answer_in_a_forum_group_stays_in_its_topic(people: Devstack) -> None:
    telegram = people.telegram
    before = len(telegram.chats[GROUP])
    asked = update(
        DANA, f"/help@{BOT_USERNAME}", chat=GROUP, message_thread_id=7, is_topic_message=True
    )
    assert telegram.post_update(asked).status_code == 200
    (answer,) = telegram.chats[GROUP][before:]
    assert answer.thread == 7 and "/my_requests" in (answer.text or "")


def test_unknown_commands_get_a_friendly_answer(people: Devstack) -> None:
    assert "/help" in say(people, DANA, "/teleport")


def test_a_new_request_conversation_continues_on_a_second_instance(people: Devstack) -> None:
    assert "subject" in say(people, DANA, "/new_request").lower()
    assert "describe" in say(people, DANA, "Compressor rattles").lower()
    # Another instance takes the rest of the conversation: its state is in Firestore.
    people.restart(TELEGRAM_WEBHOOK.target)
    assert "Priority" in say(people, DANA, "Loud rattle from the compressor on roof unit 2")
    assert "yes or no" in say(people, DANA, "High")
    created = say(people, DANA, "yes")
    assert "Created" in created
    issue = issue_named(people.erpnext, "Compressor rattles")
    assert issue["priority"] == "High" and issue["name"] in created
    # The new request's webhook reaches the notifier: the service team hears of it.
    assert wait_until(
        lambda: any(str(issue["name"]) in text for text in people.telegram.texts(GROUP))
    )


def test_a_photo_goes_through_the_drive_pipeline_attached_to_the_request(
    people: Devstack,
) -> None:
    erp = people.erpnext
    leak = str(issue_named(erp, "Hydraulic leak at the loading bay")["name"])
    assert "Send photos" in say(people, DANA, f"/upload_photo {leak}")
    photo = b"\xff\xd8\xff\xe0 a JPEG of the leak"
    file_id = people.telegram.add_file(photo)
    sizes = [
        {
            "file_id": file_id,
            "file_unique_id": "leak1",
            "width": 800,
            "height": 600,
            "file_size": len(photo),
        }
    ]
    before = len(people.telegram.chats[DANA])
    response = people.telegram.post_update(update(DANA, None, photo=sizes))
    assert response.status_code == 200
    (answer,) = people.telegram.texts(DANA)[before:]
    assert leak in answer
    (attached,) = [
        f
        for f in erp.all("File")
        if f.get("attached_to_doctype") == "Issue" and f.get("attached_to_name") == leak
    ]
    assert wait_until(lambda: bool(erp.get("File", str(attached["name"])).get("drive_file_id")))
    drive_id = str(erp.get("File", str(attached["name"]))["drive_file_id"])
    assert people.drive.content(drive_id) == photo
    (comment,) = [c for c in erp.all("Comment") if c.get("reference_name") == leak]
    assert comment["comment_email"] == "dana.kim@example.com"
    assert str(attached["file_name"]) in comment["content"]
    assert "Done" in say(people, DANA, "/done")


def test_analytics_for_admins_only(people: Devstack) -> None:
    figures = say(people, ANA, "/analytics")
    assert "Open requests:" in figures and "Invoiced this month:" in figures
    assert "Open requests:" not in say(people, DANA, "/analytics")


def test_an_emergency_request_reaches_the_team_and_on_call_escaped(people: Devstack) -> None:
    erp = people.erpnext
    issue = erp.insert(
        "Issue",
        {
            "subject": "Gas smell <b>near</b> boiler & meter",
            "priority": "Urgent",
            "customer": "Acme Builders",
        },
    )
    name = str(issue["name"])
    telegram = people.telegram

    def about(chat: int) -> list[str]:
        return [text for text in telegram.texts(chat) if name in text]

    settle(people, name)
    (alarm,) = about(CHATS["oncall"])
    assert "EMERGENCY" in alarm
    assert "Gas smell &lt;b&gt;near&lt;/b&gt; boiler &amp; meter" in alarm
    assert len(about(GROUP)) == 1


def test_a_service_report_reaches_the_admins_and_the_requests_pm(people: Devstack) -> None:
    erp = people.erpnext
    erp.add_bridge_webhook("Service Report", "on_submit", people.webhook_url, SECRET)
    leak = issue_named(erp, "Hydraulic leak at the loading bay")  # Acme's project: Ana is PM
    report = erp.insert(
        "Service Report", {"service_request": leak["name"], "summary": "Seal replaced"}
    )
    erp.submit("Service Report", str(report["name"]))
    name = str(report["name"])
    telegram = people.telegram
    assert wait_until(
        lambda: (
            any(name in text for text in telegram.texts(CHATS["admins"]))
            and any(name in text for text in telegram.texts(ANA))
        )
    )
    (to_pm,) = [text for text in telegram.texts(ANA) if name in text]
    assert str(leak["name"]) in to_pm and "Service report" in to_pm
