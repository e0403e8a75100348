"""The next actions on one incident: the inline buttons under every bot message about it, and the
board's action buttons. Pure: no HTTP, no Telegram calls, no DynamoDB.

A button's `callback_data` names the action, the incident and the status the message showed
(`take:17:new`): a press on a message that no longer shows the incident's status is refused with
the current state, so a stale message never applies a transition (docs/telegram.md, "Buttons").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chalicelib.incidents import Status

# Telegram's limit for one button's callback_data, in bytes.
MAX_CALLBACK_DATA = 64


@dataclass(frozen=True)
class Action:
    name: str  # in callback_data
    label: str  # on the button
    target: Status


TAKE = Action("take", "Take", Status.IN_PROGRESS)
RESOLVE = Action("resolve", "Resolve", Status.RESOLVED)
CLOSE = Action("close", "Close", Status.CLOSED)
REOPEN = Action("reopen", "Reopen", Status.IN_PROGRESS)

ACTIONS: dict[Status, tuple[Action, ...]] = {
    Status.NEW: (TAKE, RESOLVE),
    Status.IN_PROGRESS: (RESOLVE, CLOSE),
    Status.RESOLVED: (REOPEN, CLOSE),
    Status.CLOSED: (),
}
BY_NAME = {action.name: action for action in (TAKE, RESOLVE, CLOSE, REOPEN)}

_DATA = re.compile(r"(take|resolve|close|reopen):([1-9][0-9]{0,17}):(new|in_progress|resolved|closed)")


@dataclass(frozen=True)
class Press:
    """What a pressed button asks: `action` on incident `incident_id`, as shown in `shown`."""

    action: Action
    incident_id: int
    shown: Status


def actions_for(status: str) -> tuple[Action, ...]:
    return ACTIONS[Status(status)]


def callback_data(action: Action, incident_id: int, shown: str) -> str:
    data = f"{action.name}:{incident_id}:{Status(shown)}"
    assert len(data.encode("utf-8")) <= MAX_CALLBACK_DATA, data
    return data


def keyboard(incident: dict[str, Any]) -> dict[str, Any] | None:
    """Telegram's `reply_markup` for a message about `incident` (its id and status); None when
    nothing may be done next (closed)."""
    actions = actions_for(incident["status"])
    if not actions:
        return None
    return {"inline_keyboard": [[
        {"text": action.label, "callback_data": callback_data(action, incident["id"], incident["status"])}
        for action in actions
    ]]}


def no_keyboard() -> dict[str, Any]:
    """The markup that removes a message's buttons (editMessageText / editMessageReplyMarkup)."""
    return {"inline_keyboard": []}


def parse(data: object) -> Press | None:
    """None for anything this service did not put on a button."""
    if not isinstance(data, str) or (match := _DATA.fullmatch(data)) is None:
        return None
    return Press(BY_NAME[match.group(1)], int(match.group(2)), Status(match.group(3)))


def board_actions() -> dict[str, list[dict[str, str]]]:
    """For the board's page: per status, the buttons (label, target status) it shows."""
    return {str(status): [{"label": a.label, "action": a.name, "target": str(a.target)} for a in actions]
            for status, actions in ACTIONS.items()}
