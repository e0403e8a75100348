"""The one way a batch of notices reaches a chat: each claimed in the outbox, within the chat's
budget, folded when there are many, given back when the run fails. Shared by the notifier
(stream, reminders, digest) and escalation's steps. Why: docs/notifications.md."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from chalicelib import notifications
from chalicelib.outbox import Claim, Outbox

# Telegram's limit for one group; the notifier and escalation spend the same budget items.
MESSAGES_PER_MINUTE = 20
FOLD_OVER = 3

logger = logging.getLogger(__name__)


class Sender(Protocol):
    def send_message(self, chat_id: str, text: str, thread_id: int | None = None,
                     buttons: dict[str, Any] | None = None) -> None: ...


@dataclass(frozen=True)
class Notice:
    """One message, sent once per `key`. `buttons`: the inline keyboard (chalicelib/buttons.py)
    of the incident it is about, or None."""

    key: str
    text: str
    buttons: dict[str, Any] | None = None


@dataclass
class Delivery:
    out: set[str] = field(default_factory=set)  # keys out once this returns: sent now or before
    sent: int = 0  # of them, sent by this call (each notice of a folded message counts)
    held: int = 0  # held by another sender: sending, or died less than a lease ago
    over_budget: bool = False  # the minute's budget is spent: those this call took wait


def to_chat(outbox: Outbox, sender: Sender, chat_id: int | str, thread_id: int | None,
            notices: list[Notice], now: datetime) -> Delivery:
    """Sends what nobody sent to the chat (and forum topic): within the chat's budget, one
    message each, or more than FOLD_OVER folded into one (without buttons: it is about several
    incidents); over it, none. A failure gives this call's claims back and raises."""
    delivery = Delivery()
    taken = claim(outbox, notices, now, delivery)
    if not taken:
        return delivery
    chat = str(chat_id)
    try:
        minute = int(now.timestamp() // 60)
        count = len(taken)
        if count <= FOLD_OVER and outbox.take_budget(chat, minute, count, MESSAGES_PER_MINUTE):
            while taken:
                notice = taken[0]
                sender.send_message(chat, notice.text, thread_id=thread_id, buttons=notice.buttons)
                del taken[0]
                _sent(outbox, notice, delivery)
            logger.info("notifications sent", extra={"count": count})
        elif outbox.take_budget(chat, minute, 1, MESSAGES_PER_MINUTE):
            folded = list(taken)
            buttons = folded[0].buttons if count == 1 else None
            sender.send_message(chat, notifications.fold([n.text for n in folded]), thread_id=thread_id,
                                buttons=buttons)
            taken.clear()
            for notice in folded:
                _sent(outbox, notice, delivery)
            logger.info("notifications folded into one message", extra={"count": count})
        else:
            delivery.over_budget = True
    finally:
        give_back(outbox, taken)
    return delivery


def claim(outbox: Outbox, notices: list[Notice], now: datetime, delivery: Delivery) -> list[Notice]:
    """The notices this run now holds; those sent before go into `delivery.out`, those another
    sender holds are counted in `delivery.held`."""
    taken: list[Notice] = []
    try:
        for notice in notices:
            state = outbox.claim(notice.key, now.timestamp())
            if state is Claim.TAKEN:
                taken.append(notice)
            elif state is Claim.SENT:
                delivery.out.add(notice.key)
            else:
                delivery.held += 1
    except BaseException:
        give_back(outbox, taken)
        raise
    return taken


def _sent(outbox: Outbox, notice: Notice, delivery: Delivery) -> None:
    mark_sent(outbox, notice.key)
    delivery.out.add(notice.key)
    delivery.sent += 1


def mark_sent(outbox: Outbox, key: str) -> None:
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


def give_back(outbox: Outbox, taken: list[Notice]) -> None:
    """Before a failed run raises: its retry claims these again at once. A claim that cannot be
    given back waits out the lease, and then a retry takes it over."""
    for notice in taken:
        try:
            outbox.release(notice.key)
        except Exception as error:
            logger.warning("a claim could not be given back; it is retried after the lease",
                           extra={"key": notice.key, "error": type(error).__name__})
