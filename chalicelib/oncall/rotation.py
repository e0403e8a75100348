"""Who is on call at an instant: pure functions of a rotation, its overrides and the instant.
Nothing here reads the clock. The rules, daylight-saving changes included: docs/oncall.md."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence
from zoneinfo import ZoneInfo

DAILY = "daily"
WEEKLY = "weekly"
_PERIOD_DAYS = {DAILY: 1, WEEKLY: 7}


@dataclass(frozen=True)
class Rotation:
    members: tuple[str, ...]
    start: datetime  # naive: a wall-clock time in `time_zone`
    shift: str | int  # "daily", "weekly", or whole hours (real elapsed hours)
    time_zone: ZoneInfo


@dataclass(frozen=True)
class Override:
    id: str
    user: str
    start: datetime  # aware, UTC
    end: datetime
    created_at: datetime

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class OnCall:
    user: str
    override: Override | None
    until: datetime  # the first instant after `at` when someone else is on call
    next: str  # who is on call from `until`


def resolve_local(wall: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in `zone` as a UTC instant. A time that happens twice (clocks go back)
    is its first occurrence; a time that does not exist (clocks go forward) is the first instant
    after the gap, as cron and GoAlert do."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=0 reads the wall time with the offset before the change, fold=1 with the
    # offset after: the change itself lies between the two instants. Bisect to the second.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    offset_before = before.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, timezone.utc)


def handoff(rotation: Rotation, n: int) -> datetime:
    """The instant of the n-th handoff (0: `start`, to the first member; negative: before it)."""
    if isinstance(rotation.shift, int):
        return resolve_local(rotation.start, rotation.time_zone) + timedelta(hours=rotation.shift * n)
    days = _PERIOD_DAYS[rotation.shift] * n
    return resolve_local(rotation.start + timedelta(days=days), rotation.time_zone)


def handoffs_until(rotation: Rotation, at: datetime) -> int:
    """n: the number of the last handoff at or before `at` (negative before `start`, as if the
    rotation had always been running)."""
    if isinstance(rotation.shift, int):
        elapsed = at - resolve_local(rotation.start, rotation.time_zone)
        return elapsed // timedelta(hours=rotation.shift)
    local = at.astimezone(rotation.time_zone).replace(tzinfo=None)
    n = (local - rotation.start) // timedelta(days=_PERIOD_DAYS[rotation.shift])
    # The wall-clock estimate is off by one at most, around a clock change.
    while handoff(rotation, n + 1) <= at:
        n += 1
    while handoff(rotation, n) > at:
        n -= 1
    return n


def member(rotation: Rotation, n: int) -> str:
    return rotation.members[n % len(rotation.members)]


def who(rotation: Rotation, overrides: Sequence[Override], at: datetime) -> tuple[str, Override | None]:
    """The latest-created override covering `at`, else the rotation's member."""
    covering = [o for o in overrides if o.covers(at)]
    if covering:
        latest = max(covering, key=lambda o: (o.created_at, o.id))
        return latest.user, latest
    return member(rotation, handoffs_until(rotation, at)), None


def on_call(rotation: Rotation, overrides: Sequence[Override], at: datetime) -> OnCall:
    """Who is on call at `at`, until when, and who comes next. `until` is the first handoff,
    override start or override end after `at` at which the person changes; when nobody else
    ever comes (a single member and no overrides ahead), the next handoff."""
    user, override = who(rotation, overrides, at)
    edges = sorted({edge for o in overrides for edge in (o.start, o.end) if edge > at})
    moment = at
    for next_edge in [*edges, None]:
        # Between two edges the covering overrides stay the same: only a handoff can change
        # the person, and only while no override covers.
        if who(rotation, overrides, moment)[1] is None:
            change = _rotation_change(rotation, moment, user, next_edge)
            if change is not None:
                return OnCall(user, override, *change)
        if next_edge is None:
            break
        moment = next_edge
        successor, _ = who(rotation, overrides, moment)
        if successor != user:
            return OnCall(user, override, moment, successor)
    first = min([handoff(rotation, handoffs_until(rotation, at) + 1), *edges])
    return OnCall(user, override, first, who(rotation, overrides, first)[0])


def _rotation_change(rotation: Rotation, after: datetime, user: str,
                     before: datetime | None) -> tuple[datetime, str] | None:
    """The first handoff after `after` (and before `before`) to someone other than `user`;
    one turn of the rotation is enough to know."""
    n = handoffs_until(rotation, after)
    for k in range(n + 1, n + 1 + len(rotation.members)):
        moment = handoff(rotation, k)
        if before is not None and moment >= before:
            return None
        if member(rotation, k) != user:
            return moment, member(rotation, k)
    return None

