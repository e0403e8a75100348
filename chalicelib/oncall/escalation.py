"""Escalation: which rule comes next, whom it names, and the scheduled run that pages them.

Time is a parameter: the step math is pure, and `escalate` takes "now" from its caller (the
scheduled event's `time`). Claims, budgets and why: docs/oncall.md ("Escalation").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from chalicelib import buttons, delivery, notifications
from chalicelib.delivery import Notice, Sender
from chalicelib.incidents import Status, history_entry
from chalicelib.oncall import rotation as rot
from chalicelib.oncall.store import TeamStore
from chalicelib.oncall.teams import _override, _public, _rotation_of, iso, parse_iso
from chalicelib.outbox import DirectQueue, Outbox
from chalicelib.store import ConditionFailed, Store

# One Query page of due incidents per run; more wait for the next minute, the longest due first.
MAX_PER_RUN = 100
DIRECT_MESSAGES_PER_MINUTE = 1
BY = "escalation"

logger = logging.getLogger(__name__)


DirectChat = Callable[[Store, str], "int | None"]


@dataclass(frozen=True)
class Team:
    name: str
    generation: str  # set when the team is created: a team deleted and created again has another
    chat_id: int
    thread_id: int | None
    rules: list[dict[str, Any]]
    num_loops: int
    rotation: rot.Rotation
    overrides: tuple[rot.Override, ...]


# --- the step math (pure) ---


def following(team: Team, rule: int, loop: int) -> tuple[int, int] | None:
    """The (rule, loop) after `rule` of `loop`; None when the last rule of the last loop is done."""
    if rule < len(team.rules):
        return rule + 1, loop
    if loop < team.num_loops:
        return 1, loop + 1
    return None


def state(team: Team, rule: int, loop: int, notified_at: datetime) -> dict[str, Any]:
    """The escalation once `rule` of `loop` is notified at `notified_at`: the next is due after
    that rule's delay."""
    delay = timedelta(minutes=team.rules[rule - 1]["escalation_delay_in_minutes"])
    return {"rule": rule, "loop": loop, "next_at": iso(notified_at + delay), "generation": team.generation}


def targets(team: Team, rule: int, at: datetime) -> list[str]:
    """The usernames rule `rule` names at `at`, each once, in the rule's order."""
    names: list[str] = []
    for target in team.rules[rule - 1]["targets"]:
        if target == "on_call":
            names.append(rot.who(team.rotation, team.overrides, at)[0])
        elif target == "next_on_call":
            names.append(rot.on_call(team.rotation, team.overrides, at).next)
        elif target == "team":
            names.extend(team.rotation.members)
        else:
            names.append(target.removeprefix("@"))
    seen: set[str] = set()
    return [n for n in names if not (n.lower() in seen or seen.add(n.lower()))]


def on_call(team: Team, at: datetime) -> str:
    return rot.who(team.rotation, team.overrides, at)[0]


def step_text(incident: dict[str, Any], team: Team, rule: int, loop: int, paged: list[str]) -> str:
    loops = f", loop {loop + 1} of {team.num_loops + 1}" if team.num_loops else ""
    assignee = f"; assignee @{incident['assignee']}" if incident.get("assignee") else ""
    preview = notifications.preview(incident["description"], 200)
    return (f"#{incident['id']} still new, escalation rule {rule} of {len(team.rules)}{loops}: "
            f"{notifications.mentions(paged)} — {preview}{assignee}")


# --- reading a team ---


def load_team(store: Store, name: str, at: datetime) -> Team | None:
    """With the overrides that end after `at`; None when there is no such team."""
    teams = TeamStore(store)
    item = teams.team(name)
    if item is None:
        return None
    team = _public(item)
    overrides = tuple(_override(o) for o in teams.overrides(name, item["generation"], iso(at)))
    return Team(name=name, generation=item["generation"], chat_id=team["chat_id"], thread_id=team["thread_id"],
                rules=team["escalation_rules"], num_loops=team["num_loops"],
                rotation=_rotation_of(team), overrides=overrides)


@dataclass(frozen=True)
class Opening:
    """What an incident of `team` opens (or is handed over) with at `at`."""

    team: str
    assignee: str
    escalation: dict[str, Any]
    paged: list[str]  # rule 1's targets: the opening notice pages them


def opening(team: Team, at: datetime) -> Opening:
    return Opening(team.name, on_call(team, at), state(team, 1, 0, at), targets(team, 1, at))


# --- the scheduled run ---


@dataclass
class Run:
    stepped: list[int] = field(default_factory=list)  # incidents whose next rule was notified
    ended: list[int] = field(default_factory=list)  # incidents whose escalation stopped
    waiting: list[int] = field(default_factory=list)  # a notice waits (budget, another sender)
    flushed: int = 0  # direct messages that carried queued notices


@dataclass(frozen=True)
class _Step:
    incident: dict[str, Any]
    team: Team
    rule: int
    loop: int
    paged: list[str]
    text: str

    @property
    def key(self) -> str:
        return f"esc#{self.incident['id']}#{self.loop}#{self.rule}"

    @property
    def notice(self) -> Notice:
        return Notice(self.key, self.text, buttons.keyboard(self.incident))

    def dm_key(self, username: str) -> str:
        return f"{self.key}#dm#{username.lower()}"


def escalate(store: Store, sender: Sender, now: datetime, direct_chat: DirectChat) -> Run:
    """Pages the next rule of every incident whose escalation is due at `now`, each notice once,
    then records the step and moves the escalation on; a step whose notices are not all out
    (a budget spent, another run sending them) is left due for the next run."""
    run = Run()
    outbox = Outbox(store)
    run.flushed = flush_direct(store, sender, now, direct_chat)
    teams: dict[str, Team | None] = {}
    steps: list[_Step] = []
    for incident in store.due_escalations(iso(now), MAX_PER_RUN):
        current = incident["escalation"]
        if incident["status"] != Status.NEW or current is None:
            continue  # the index lags the table a little
        name = incident.get("team") or ""
        if name not in teams:
            teams[name] = load_team(store, name, now) if name else None
        team = teams[name]
        if team is None or current.get("generation", team.generation) != team.generation:
            # a team created again under the same name is another team: it does not inherit this
            note = f"escalation stopped: team {name!r} was deleted"
            _move_on(store, incident, current, None, _entry(incident, now, note), run)
            continue
        after = following(team, current["rule"], current["loop"])
        if after is None:
            _move_on(store, incident, current, None, None, run)
            continue
        rule, loop = after
        paged = targets(team, rule, now)
        steps.append(_Step(incident, team, rule, loop, paged,
                           step_text(incident, team, rule, loop, paged)))

    delivered: set[str] = set()
    by_team: dict[str, list[_Step]] = {}
    for step in steps:
        by_team.setdefault(step.team.name, []).append(step)
    for group in by_team.values():
        team = group[0].team
        # a step whose notices are not all out (budget, another sender) is left due: no raise
        delivered |= delivery.to_chat(outbox, sender, team.chat_id, team.thread_id,
                                      [step.notice for step in group], now).out
    direct: dict[str, list[Notice]] = {}
    for step in steps:
        if step.key in delivered:
            for username in step.paged:
                direct.setdefault(username, []).append(Notice(step.dm_key(username), step.text))
    delivered |= to_people(store, outbox, sender, direct, now, direct_chat)

    for step in steps:
        if step.key in delivered and all(step.dm_key(u) in delivered for u in step.paged):
            note = f"notified {notifications.mentions(step.paged)} (rule {step.rule}, loop {step.loop})"
            _move_on(store, step.incident, step.incident["escalation"],
                     state(step.team, step.rule, step.loop, now), _entry(step.incident, now, note), run)
        else:
            run.waiting.append(step.incident["id"])
    logger.info("escalation run", extra={"stepped": len(run.stepped), "ended": len(run.ended),
                                         "waiting": len(run.waiting)})
    return run


def _entry(incident: dict[str, Any], now: datetime, note: str) -> dict[str, Any]:
    at = max(iso(now), _just_after(incident["last_entry_at"]))
    return history_entry(at, Status.NEW, note, BY)


def _just_after(at: str) -> str:
    return iso(parse_iso(at.replace("Z", "+00:00")) + timedelta(milliseconds=1))


def _move_on(store: Store, incident: dict[str, Any], current: dict[str, Any],
             after: dict[str, Any] | None, entry: dict[str, Any] | None, run: Run) -> None:
    try:
        store.advance_escalation(incident["id"], current, after, entry)
    except ConditionFailed:
        return  # taken, resolved, or moved on by another run since it was read
    (run.stepped if after is not None else run.ended).append(incident["id"])


# --- direct messages (the team's chat gets its notices through chalicelib/delivery.py) ---


def to_people(store: Store, outbox: Outbox, sender: Sender, notices: dict[str, list[Notice]],
              now: datetime, direct_chat: DirectChat) -> set[str]:
    """Direct messages: at most one a minute per person. Over that, the notices wait in the
    person's queue and the next minute's message (`flush_direct`) carries them all, folded; a
    queued notice counts as out. A person who never linked a private chat: nothing to send.
    No buttons: a press counts only from an allowed chat, so they are on the chat's message."""
    out: set[str] = set()
    queue = DirectQueue(store)
    for username, theirs in notices.items():
        chat = direct_chat(store, username)
        if chat is None:
            out |= {notice.key for notice in theirs}
            continue
        claimed = delivery.Delivery()
        taken = delivery.claim(outbox, theirs, now, claimed)
        out |= claimed.out
        if not taken:
            continue
        try:
            if _direct_budget(outbox, username, now):
                texts = [notice.text for notice in taken]
                sender.send_message(str(chat), texts[0] if len(texts) == 1 else notifications.fold(texts))
            else:
                queue.add(username, [(notice.key, notice.text) for notice in taken], now.timestamp())
            done, taken = taken, []  # sent or queued: never given back, even by a run dying here
            for notice in done:
                delivery.mark_sent(outbox, notice.key)
                out.add(notice.key)
        finally:
            delivery.give_back(outbox, taken)
    return out


def flush_direct(store: Store, sender: Sender, now: datetime, direct_chat: DirectChat) -> int:
    """One message per person with queued notices and this minute's budget: all of them, folded.
    Sent, then removed: a run that dies in between sends them again (at least once)."""
    queue, outbox, sent = DirectQueue(store), Outbox(store), 0
    for marker in queue.people(MAX_PER_RUN):
        username = marker["username"]
        waiting = queue.waiting(username, MAX_PER_RUN)
        chat = direct_chat(store, username)
        if waiting and chat is not None:
            if not _direct_budget(outbox, username, now):
                continue
            texts = [text for _, text in waiting]
            sender.send_message(str(chat), texts[0] if len(texts) == 1 else notifications.fold(texts))
            sent += 1
        whole = len(waiting) < MAX_PER_RUN
        queue.remove(username, [key for key, _ in waiting], int(marker["n"]) if whole else None)
    return sent


def _direct_budget(outbox: Outbox, username: str, now: datetime) -> bool:
    return outbox.take_budget(f"dm#{username.lower()}", int(now.timestamp() // 60), 1,
                              DIRECT_MESSAGES_PER_MINUTE)
