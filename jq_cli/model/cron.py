"""Cron arithmetic, and nothing else: when a schedule fires, in its time zone, across daylight-saving
changes, and what a scheduler that was away fires on its return (the misfire policy). No I/O: the
caller passes the database's clock in (docs/design.md, Invariant 4).

Wall-clock rules (README "Schedules"):
- A wall-clock time the clocks skip (spring forward) fires once, shifted by the length of the gap:
  02:30 on a day Europe/Berlin jumps from 02:00 to 03:00 fires at 03:30 summer time.
- A wall-clock time the clocks repeat (fall back) fires once, at its first pass (summer time),
  unless the schedule runs in every hour (its hour field is `*`): such a schedule follows real time
  and fires in both passes, so an hourly job still runs every hour.
- Fire times are strictly increasing; a shifted tick that lands on a real one is the same tick.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from jq_cli.errors import InvalidInput

UTC = UTC
MISFIRE_POLICIES = ("skip", "once")
ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# Daylight-saving shifts are an hour almost everywhere and never more than two: a wider look
# around an instant always sees the whole of one transition.
NEAR = timedelta(hours=3)
COUNT_CAP = 100  # missed ticks counted one by one, for the log; beyond, the latest is bisected


@dataclass(frozen=True)
class FirePlan:
    """What a due schedule does now: fire `fire_time` (None: fire nothing), then wait for `next_fire_at`.
    `missed` counts the due ticks that did not get a job of their own (capped at COUNT_CAP)."""

    fire_time: datetime | None
    next_fire_at: datetime
    missed: int


def parse_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`. Raises InvalidInput naming it."""
    if (
        not isinstance(name, str)
        or not name
        or name != name.strip()
        or ".." in name
        or name.startswith("/")
    ):
        raise InvalidInput(
            f"unknown time zone {name!r} (use an IANA name such as UTC or Europe/Berlin)"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"unknown time zone {name!r} (use an IANA name such as UTC or Europe/Berlin)"
        ) from None


def check_cron(expr: str) -> str:
    """The expression, whitespace normalised, once it is valid and fires at all. Five fields
    (minute hour day month weekday), an optional sixth for seconds (LAST, as croniter reads it:
    `* * * * * */10` is every ten seconds), or an @alias. Raises InvalidInput."""
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidInput(
            'cron expression is empty (e.g. "0 9 * * *": minute hour day month weekday)'
        )
    text = " ".join(expr.split())
    fields = text.split(" ")
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise InvalidInput(
                f"invalid cron expression {expr!r}: unknown alias (one of {', '.join(ALIASES)})"
            )
        text = text.lower()
    elif len(fields) not in (5, 6):
        raise InvalidInput(
            f"invalid cron expression {expr!r}: it has {len(fields)} fields, want 5 (minute hour day month "
            "weekday) or 6 (the same and seconds)"
        )
    try:
        it = croniter(text, datetime(2000, 1, 1))
        it.get_next(datetime)
    except CroniterBadDateError:
        raise InvalidInput(f"invalid cron expression {expr!r}: it never fires") from None
    except (CroniterError, ValueError, KeyError, TypeError) as exc:
        detail = str(exc).replace(f"[{text}] ", "") or type(exc).__name__
        if "out of range" in detail:
            detail = (
                "a field is out of range (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7, "
                "second 0-59)"
            )
        raise InvalidInput(f"invalid cron expression {expr!r}: {detail}") from None
    return text


def seconds_hint(expr: str) -> str | None:
    """A warning for a six-field expression written seconds-first (Quartz, Spring): here the
    seconds are the LAST field, as croniter reads them, so `*/10 * * * * *` fires every second
    of one minute in ten. None when the expression does not look like that mistake."""
    fields = expr.split()
    if len(fields) != 6 or fields[5] != "*" or fields[0] == "*":
        return None
    every = f"* * * * * {fields[0]}" if all(f == "*" for f in fields[1:]) else None
    return (
        f"{expr!r}: the sixth field is the seconds here (minute hour day month weekday second), "
        f"so it fires every second of the minutes its first field names"
        + (f"; for {fields[0]} seconds write {every!r}" if every else "")
    )


def check_misfire(value: str) -> str:
    if value not in MISFIRE_POLICIES:
        raise InvalidInput(f"misfire policy must be skip or once, got {value!r}")
    return value


def _every_hour(expr: str) -> bool:
    hours = croniter(expr, datetime(2000, 1, 1)).expanded[1]
    return hours == ["*"] or len(hours) == 24


def _instants(wall: datetime, zone: ZoneInfo, both_passes: bool) -> list[datetime]:
    """The instants at which a matching naive wall-clock time fires (see the module's rules)."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    a, b = first.astimezone(UTC), second.astimezone(UTC)
    if a == b:
        return [a]
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return [
            a
        ]  # skipped by the clocks: fold 0 reads it with the old offset, i.e. shifted by the gap
    return [a, b] if both_passes else [a]


def _shift_near(zone: ZoneInfo, instant: datetime) -> timedelta:
    """How far the clocks move in a transition within NEAR of `instant` (zero when none does)."""
    # An aware datetime in a ZoneInfo always has an offset; `or` only satisfies the type.
    after = (instant + NEAR).astimezone(zone).utcoffset() or timedelta(0)
    before = (instant - NEAR).astimezone(zone).utcoffset() or timedelta(0)
    return abs(after - before)


def next_fire(expr: str, tz: str, after: datetime) -> datetime:
    """The first fire time strictly after the aware instant `after`, in UTC. Raises InvalidInput
    for an expression that never fires again."""
    zone = parse_zone(tz)
    both = _every_hour(expr)
    after = after.astimezone(UTC)
    local = after.astimezone(zone).replace(tzinfo=None)
    try:
        if not _shift_near(zone, after):
            # Far from a transition wall-clock order is time order: croniter's next wall time is it,
            # unless the search runs into one (a yearly tick on a DST night), which the slow path handles.
            it = croniter(expr, local)
            wall = it.get_next(datetime)
            found = [i for i in _instants(wall, zone, both) if i > after]
            if found and not _shift_near(zone, found[0]):
                return found[0]
        window = max(_shift_near(zone, after), timedelta(hours=1)) + timedelta(minutes=1)
        return _next_fire_near_transition(expr, zone, both, after, local, window)
    except CroniterBadDateError:
        raise InvalidInput(
            f"cron expression {expr!r} never fires after {after.isoformat()}"
        ) from None


def _next_fire_near_transition(
    expr: str, zone: ZoneInfo, both: bool, after: datetime, local: datetime, window: timedelta
) -> datetime:
    """Near a transition wall-clock order and time order differ by at most the shift: look at the
    wall times from `window` before `after` until `window` past the best candidate; keep the earliest."""
    best: datetime | None = None
    best_wall: datetime | None = None
    it = croniter(expr, local - window)
    while True:
        wall = it.get_next(datetime)
        if best is not None and best_wall is not None and wall > best_wall + window:
            return best
        for instant in _instants(wall, zone, both):
            if instant > after and (best is None or instant < best):
                best, best_wall = instant, wall


def fire_times(expr: str, tz: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`, in UTC."""
    out: list[datetime] = []
    for _ in range(count):
        after = next_fire(expr, tz, after)
        out.append(after)
    return out


def _iter_due(expr: str, tz: str, first: datetime, now: datetime) -> Iterator[datetime]:
    tick = first
    while tick <= now:
        yield tick
        tick = next_fire(expr, tz, tick)


def _latest_due(expr: str, tz: str, first: datetime, now: datetime) -> datetime:
    """The last fire time <= now, given that `first` is one: bisect on `a` for next_fire(a) <= now."""
    lo, hi = first, now  # next_fire(lo) may be <= now; next_fire(hi) > now
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if next_fire(expr, tz, mid) <= now:
            lo = mid
        else:
            hi = mid
    candidate = next_fire(expr, tz, lo)
    return candidate if candidate <= now else first


def plan(
    expr: str, tz: str, due_at: datetime, now: datetime, misfire: str, grace: float
) -> FirePlan:
    """What a schedule whose next tick `due_at` has come (due_at <= now) fires now.

    `once`: one job for every tick due, keyed by the latest of them. `skip`: the latest tick fires
    only if it is at most `grace` seconds late (a scheduler's normal lag); ticks missed while no
    scheduler ran get nothing. Either way the next tick is the first one after `now`."""
    check_misfire(misfire)
    latest, count = due_at, 0
    for tick in _iter_due(expr, tz, due_at, now):
        latest, count = tick, count + 1
        if count >= COUNT_CAP:
            latest = _latest_due(expr, tz, tick, now)
            break
    upcoming = next_fire(expr, tz, max(latest, now))
    if misfire == "skip" and (now - latest).total_seconds() > grace:
        return FirePlan(None, upcoming, count)
    return FirePlan(latest, upcoming, count - 1)
