"""Telling the group: the use cases behind the stream handler and the two schedules.

Outbox claims, budget and folding, and why: docs/notifications.md.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Protocol

from chalicelib import notifications
from chalicelib.incidents import OPEN_STATUSES, Source, Status
from chalicelib.outbox import Claim, Outbox
from chalicelib.store import Store, change_from_stream

# Telegram's limit for one group.
MESSAGES_PER_MINUTE = 20
FOLD_OVER = 3
MAX_REMINDERS_PER_RUN = 200
OLDEST_IN_DIGEST = 5

logger = logging.getLogger(__name__)


class Sender(Protocol):
    def send_message(self, chat_id: str, text: str) -> None: ...


class OverBudget(Exception):
    """This minute's budget is spent; Lambda retries the batch later."""


class NotYetSent(Exception):
    """Another sender holds some of the notices (it is sending them, or it failed less than a
    lease ago without giving them back): Lambda retries, and once the lease is over the retry
    sends them."""


@dataclass(frozen=True)
class Settings:
    chat_id: str | None
    remind_after_min: int = 15
    remind_every_min: int = 60

    @classmethod
    def from_environment(cls) -> "Settings":
        return cls(
            chat_id=os.environ.get("TELEGRAM_NOTIFY_CHAT", "").strip() or None,
            remind_after_min=int(os.environ.get("REMIND_NEW_AFTER_MIN") or 15),
        )


Destination = tuple[str, "int | None"]  # a chat, and a forum topic in it


def deliver_changes(store: Store, sender: Sender, settings: Settings,
                    records: Iterable[dict[str, Any]], now: datetime,
                    direct_chat: Any = None) -> int:
    """Returns how many notifications were sent (folded ones count each). A team's incidents
    are told in the team's chat; the people an opening pages get a direct message as well."""
    from chalicelib.oncall import escalation, people

    outbox = Outbox(store)
    teams: dict[str, Any] = {}
    messages: dict[Destination, list[tuple[str, str]]] = {}
    direct: dict[str, list[tuple[str, str]]] = {}
    for record in records:
        change = change_from_stream(record)
        if change is None:
            continue
        incident_id, entry = change
        if entry["by"] == escalation.BY:
            continue  # the escalation run sent its own notices
        incident = store.get_incident_item(incident_id)
        if incident is None:
            continue
        key = f"change#{incident_id}#{entry['at']}"
        paged = entry.get("paged") or []
        if entry["by"].startswith("telegram:"):
            # the webhook's answer said it already; only whom it pages is news
            text = notifications.paging_text(incident, paged) if paged else None
        else:
            text = notifications.change_text(incident, entry)
        destination = _destination(store, incident, settings, teams, now)
        if text and destination is not None:
            messages.setdefault(destination, []).append((key, text))
        for username in paged:
            direct.setdefault(username, []).append((f"{key}#dm#{username.lower()}", text or key))
    sent = 0
    for (chat_id, thread_id), batch in messages.items():
        sent += _send(outbox, sender, chat_id, batch, now, thread_id)
    if direct:
        out = escalation.to_people(store, outbox, sender, direct, now, direct_chat or people.direct_chat)
        waiting = sum(1 for theirs in direct.values() for key, _ in theirs if key not in out)
        if waiting:
            raise NotYetSent(f"{waiting} direct messages are held by another sender")
        sent += sum(len(theirs) for theirs in direct.values())
    return sent


def _destination(store: Store, incident: dict[str, Any], settings: Settings, teams: dict[str, Any],
                 now: datetime) -> Destination | None:
    """The team's chat and topic; a team-less incident (or one whose team was deleted): the
    stage's chat, if any."""
    from chalicelib.oncall import escalation

    name = incident.get("team")
    if name:
        if name not in teams:
            teams[name] = escalation.load_team(store, name, now)
        team = teams[name]
        if team is not None:
            return str(team.chat_id), team.thread_id
    return (settings.chat_id, None) if settings.chat_id else None


def send_reminders(store: Store, sender: Sender, settings: Settings, now: datetime) -> int:
    """Each in its team's chat (the stage's for a team-less incident), unless that chat is muted."""
    outbox = Outbox(store)
    due_before = _iso(now - timedelta(minutes=settings.remind_after_min))
    # The longest waiting first: past the cap, the newest wait for the next run.
    waiting = store.oldest(statuses=[str(Status.NEW)], before_key=due_before, count=MAX_REMINDERS_PER_RUN)
    teams: dict[str, Any] = {}
    muted: dict[str, bool] = {}
    messages: dict[Destination, list[tuple[str, str]]] = {}
    for incident in waiting:
        destination = _destination(store, incident, settings, teams, now)
        if destination is None:
            continue
        if destination[0] not in muted:
            muted[destination[0]] = _muted(outbox, destination[0], now)
        if muted[destination[0]]:
            continue
        waited = now - _parse(incident["created_at"]) - timedelta(minutes=settings.remind_after_min)
        slot = int(waited.total_seconds() // (settings.remind_every_min * 60))
        messages.setdefault(destination, []).append(
            (f"remind#{incident['id']}#{slot}", notifications.reminder_text(incident, now)))
    return sum(_send(outbox, sender, chat_id, batch, now, thread_id)
               for (chat_id, thread_id), batch in messages.items())


def send_digest(store: Store, sender: Sender, settings: Settings, now: datetime) -> int:
    """Each team's chat (and topic) the digest of its own open incidents; the stage's chat that
    of the incidents without a team or whose team was deleted. A muted chat gets none. Reads the
    open incidents and the teams, never the table; each digest once a day (its outbox key)."""
    from chalicelib.oncall.store import TeamStore

    outbox = Outbox(store)
    teams = {item["sk"]: item for item in TeamStore(store).teams()}
    theirs: dict[str | None, list[dict[str, Any]]] = {name: [] for name in teams}
    theirs[None] = []
    for incident in store.every_in([str(s) for s in OPEN_STATUSES]):  # oldest first
        team = incident.get("team")
        theirs[team if team in teams else None].append(incident)
    day = now.date().isoformat()
    digests: list[tuple[Destination, str, str]] = []  # (where, outbox key, text)
    if settings.chat_id is not None:
        whose = " without a team" if teams else ""
        digests.append(((settings.chat_id, None), f"digest#{day}#{settings.chat_id}",
                        _digest(theirs[None], now, whose)))
    for name, team in sorted(teams.items()):
        chat_id = str(int(team["chat_id"]))
        thread_id = int(team["thread_id"]) if team.get("thread_id") is not None else None
        digests.append(((chat_id, thread_id), f"digest#{day}#{chat_id}#{name}",
                        _digest(theirs[name], now, f" in {name}")))
    muted: dict[str, bool] = {}
    sent, failed = 0, None
    for (chat_id, thread_id), key, text in digests:
        try:
            if chat_id not in muted:
                muted[chat_id] = _muted(outbox, chat_id, now)
            if not muted[chat_id]:
                sent += _send(outbox, sender, chat_id, [(key, text)], now, thread_id)
        except Exception as error:  # one chat failing must not keep the digest from the others
            logger.warning("a digest was not sent; the run is retried",
                           extra={"chat_id": chat_id, "error": type(error).__name__})
            failed = failed or error
    if failed is not None:
        raise failed  # the retry sends only what is not sent yet (outbox keys)
    return sent


def _digest(incidents: list[dict[str, Any]], now: datetime, whose: str) -> str:
    counts = {(str(status), str(source)): 0 for status in OPEN_STATUSES for source in Source}
    for incident in incidents:
        counts[(incident["status"], incident["source"])] += 1
    return notifications.digest_text(counts, incidents[:OLDEST_IN_DIGEST], now, whose)


def mute(store: Store, chat_id: int, until: datetime) -> None:
    Outbox(store).mute(str(chat_id), _iso(until))


def unmute(store: Store, chat_id: int) -> None:
    Outbox(store).unmute(str(chat_id))


def _muted(outbox: Outbox, chat_id: str, now: datetime) -> bool:
    until = outbox.muted_until(chat_id)
    return until is not None and until > _iso(now)


def _send(outbox: Outbox, sender: Sender, chat_id: str, messages: list[tuple[str, str]],
          now: datetime, thread_id: int | None = None) -> int:
    """Sends what nobody sent; raises unless every notice is sent, by this run or another."""
    unsent: list[tuple[str, str]] = []  # claimed by this run, not yet sent
    busy = 0
    try:
        for key, text in messages:
            state = outbox.claim(key, now.timestamp())
            if state is Claim.TAKEN:
                unsent.append((key, text))
            elif state is Claim.BUSY:
                busy += 1
        sent = len(unsent)
        if unsent:
            _deliver(outbox, _InTopic(sender, thread_id), chat_id, unsent, now)
    except BaseException:
        _give_back(outbox, unsent)
        raise
    if busy:
        raise NotYetSent(f"{busy} notifications are held by another sender; retry after its lease")
    return sent


def _deliver(outbox: Outbox, sender: Sender, chat_id: str, unsent: list[tuple[str, str]],
             now: datetime) -> None:
    """Takes from `unsent` each notice as soon as Telegram has it."""
    minute = int(now.timestamp() // 60)
    count = len(unsent)
    if count <= FOLD_OVER and outbox.take_budget(chat_id, minute, count, MESSAGES_PER_MINUTE):
        while unsent:
            key, text = unsent[0]
            sender.send_message(chat_id, text)
            del unsent[0]
            _mark_sent(outbox, key)
        logger.info("notifications sent", extra={"count": count})
    elif outbox.take_budget(chat_id, minute, 1, MESSAGES_PER_MINUTE):
        # a burst, or too many for this minute: fold
        folded = list(unsent)
        sender.send_message(chat_id, notifications.fold([text for _, text in folded]))
        unsent.clear()
        for key, _ in folded:
            _mark_sent(outbox, key)
        logger.info("notifications folded into one message", extra={"count": count})
    else:
        raise OverBudget(f"{count} notifications wait for the next minute")


@dataclass(frozen=True)
class _InTopic:
    """A sender bound to a forum topic (none: the chat itself)."""

    sender: Any
    thread_id: int | None

    def send_message(self, chat_id: str, text: str) -> None:
        if self.thread_id is None:
            self.sender.send_message(chat_id, text)
        else:
            self.sender.send_message(chat_id, text, self.thread_id)


def _mark_sent(outbox: Outbox, key: str) -> None:
    """Telegram has it: a claim left unmarked would be sent again after its lease, so the mark
    is tried twice, and a mark that still fails does not fail the run."""
    for attempt in (1, 2):
        try:
            outbox.mark_sent(key)
            return
        except Exception as error:
            if attempt == 2:
                logger.error("a sent notification could not be marked sent; it may be sent again "
                             "after the lease", extra={"key": key, "error": type(error).__name__})


def _give_back(outbox: Outbox, unsent: list[tuple[str, str]]) -> None:
    """Before a failed run raises: its retry claims these again at once. A claim that cannot be
    given back waits out the lease, and then a retry takes it over."""
    for key, _ in unsent:
        try:
            outbox.release(key)
        except Exception as error:
            logger.warning("a claim could not be given back; it is retried after the lease",
                           extra={"key": key, "error": type(error).__name__})


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))
