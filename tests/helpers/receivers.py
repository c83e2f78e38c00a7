"""The other end of a webhook: a loopback server that records every POST and answers as told."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from devstack.httpserver import LoopbackServer, Reply


@dataclass(frozen=True, slots=True)
class Captured:
    path: str
    """The path and query, as sent."""
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


class WebhookReceiver(LoopbackServer):
    """Records every POST in `posts`; answers the next of `statuses`, then `status`, with
    `answer`, after `delay_s` (a slow receiver)."""

    name = "webhook-receiver"

    def __init__(
        self, *, status: int = 200, answer: bytes = b"", content_type: str = "text/plain"
    ) -> None:
        super().__init__()
        self.status = status
        self.statuses: list[int] = []
        self.answer = answer
        self.content_type = content_type
        self.delay_s = 0.0
        self.posts: list[Captured] = []
        self._arrived = threading.Condition()

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        with self._arrived:
            self.posts.append(Captured(raw_path, dict(headers), body))
            self._arrived.notify_all()
            status = self.statuses.pop(0) if self.statuses else self.status
        headers = (("Content-Type", self.content_type),)
        return Reply(status, self.answer, headers, delay_s=self.delay_s)

    def bodies(self) -> list[Any]:
        """Every body received, as JSON."""
        return [post.json() for post in self.posts]

    def forms(self, signature_header: str) -> list[tuple[str, str, dict[str, str]]]:
        """(path and query, the signature header, the form) of every form-encoded POST, as
        Twilio sends them."""
        return [
            (post.path, post.headers.get(signature_header) or "", post.form())
            for post in self.posts
        ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Captured]:
        """The first `count` posts, once they are in (AssertionError after `timeout`)."""
        with self._arrived:
            arrived = self._arrived.wait_for(lambda: len(self.posts) >= count, timeout)
        assert arrived, f"{len(self.posts)} of {count} posts arrived in {timeout} s"
        return self.posts[:count]
