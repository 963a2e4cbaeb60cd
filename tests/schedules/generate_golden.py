"""Generates tests/schedules/golden.json from Prefect's own schedule classes.

Run with a venv holding prefect==3.9.1 (outside the repo):

    $PREFECT_VENV/bin/python tests/schedules/generate_golden.py > tests/schedules/golden.json

Each case records what Prefect returns and what the wall-clock rule of DESIGN.md section 4
(RFC 5545 section 3.3.5) gives, computed independently here with zoneinfo: a local time that
occurs twice means its first occurrence (fold=0), one that does not exist is read with the
offset before the gap (PEP 495 fold=0 does exactly that). Where the two differ, the case says
which known Prefect behaviour is the cause; the Rust test expects the rule.
"""

import asyncio
import datetime as dt
import json
import re
import sys
from zoneinfo import ZoneInfo

import dateutil.rrule
from prefect._vendor.croniter import croniter
from prefect.server.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

UTC = dt.timezone.utc
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Pacific/Chatham",
]
N = 8


def transitions(zone, year=2026):
    """Instants (UTC) where the zone's offset changes in `year`."""
    tz = ZoneInfo(zone)
    out = []
    t = dt.datetime(year, 1, 1, tzinfo=UTC)
    prev = t.astimezone(tz).utcoffset()
    while t.year == year:
        nxt = t + dt.timedelta(minutes=15)
        off = nxt.astimezone(tz).utcoffset()
        if off != prev:
            out.append(nxt)
            prev = off
        t = nxt
    return out


def starts(zone):
    """Starts on both sides of each DST change, and one ordinary day."""
    tz = ZoneInfo(zone)
    result = [dt.datetime(2026, 6, 15, 10, 7, 30, tzinfo=tz)]
    for tr in transitions(zone):
        for minutes in (-150, -20, 10, 70):
            result.append((tr + dt.timedelta(minutes=minutes)).astimezone(tz))
    return result


def iso(d):
    return d.isoformat()


def rule_localize(walls, zone, start, n, end=None):
    tz = ZoneInfo(zone)
    seen, out = set(), []
    for wall in walls:
        at = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if end is not None and at > end:
            break
        if at >= start and at not in seen:
            seen.add(at)
            out.append(at)
        if len(out) >= n * 4 + 200:
            break
    out.sort()
    return [iso(a.astimezone(tz)) for a in out[:n]]


def same(a, b):
    return [dt.datetime.fromisoformat(x) for x in a] == [dt.datetime.fromisoformat(x) for x in b]


async def interval_cases():
    cases = []
    sizes = [30, 60, 300, 900, 3600, 5400, 7200, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 30 * 86400]
    for zone in ZONES:
        tz = ZoneInfo(zone)
        for start in starts(zone):
            for size in sizes:
                for anchor in (dt.datetime(2026, 1, 1, 2, 30, tzinfo=tz), dt.datetime(2026, 12, 31, 2, 30, tzinfo=tz)):
                    sched = IntervalSchedule(interval=dt.timedelta(seconds=size), anchor_date=anchor, timezone=zone)
                    got = [iso(d) for d in await sched.get_dates(n=N, start=start)]
                    if size % 86400 == 0:
                        days = size // 86400
                        wall0 = anchor.replace(tzinfo=None)
                        k0 = (start.astimezone(UTC) - anchor.astimezone(UTC)).days // days - 2
                        walls = (wall0 + dt.timedelta(days=days * (k0 + i)) for i in range(N * 4))
                        rule = rule_localize(walls, zone, start.astimezone(UTC), N)
                        why = "Prefect's whole-day intervals keep an hour's shift after a DST gap"
                    else:
                        a = anchor.astimezone(UTC)
                        k0 = (start.astimezone(UTC) - a) // dt.timedelta(seconds=size)
                        times = [a + dt.timedelta(seconds=size * (k0 + i)) for i in range(N + 2)]
                        rule = [iso(t.astimezone(tz)) for t in times if t >= start.astimezone(UTC)][:N]
                        why = "sub-day intervals across a fold on Python below 3.13"
                    case = {
                        "schedule": {"interval": size, "anchor_date": iso(anchor), "timezone": zone},
                        "start": iso(start),
                        "n": N,
                        "prefect": got,
                        "expected": rule,
                    }
                    if not same(got, rule):
                        case["divergence"] = why
                    cases.append(case)
    return cases


CRONS = [
    "* * * * *",
    "*/5 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "0 9 * * MON-FRI",
    "0 9 * * mon-fri",
    "15 1,2,3 * * *",
    "0 0 1 * *",
    "0 12 L * *",
    "0 10 * * 5#2",
    "0 10 * * L5",
    "0 6 * * FRI-MON",
    "0 22-2 * * *",
    "0 0 * * SAT-SUN",
    "0 0 * * 7",
    "0 0 ? * 1",
    "5 4 * JAN,JUL *",
    "0 0 1-7 * 1",
    "0 12 13 * 5",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "0 9 * * * 30",
    "*/10 2 * * *",
    "0 0 29 2 *",
    "45 2 * 3,10 0",
    "0 */3 * * *",
    "10-20/5 3 * * *",
]


async def cron_cases():
    cases = []
    for zone in ZONES:
        tz = ZoneInfo(zone)
        zone_starts = starts(zone)
        for cron in CRONS:
            for day_or in (True, False):
                if not day_or and cron not in ("0 0 1-7 * 1", "0 12 13 * 5"):
                    continue
                for start in zone_starts:
                    sched = CronSchedule(cron=cron, timezone=zone, day_or=day_or)
                    got = [iso(d) for d in await sched.get_dates(n=N, start=start)]
                    wall_start = start.replace(tzinfo=None) - dt.timedelta(hours=3, seconds=1)
                    it = croniter(cron, wall_start, day_or=day_or)
                    walls = (it.get_next(dt.datetime) for _ in range(N * 4 + 1000))
                    rule = rule_localize(walls, zone, start.astimezone(UTC), N)
                    case = {
                        "schedule": {"cron": cron, "timezone": zone, "day_or": day_or},
                        "start": iso(start),
                        "n": N,
                        "prefect": got,
                        "expected": rule,
                    }
                    if not same(got, rule):
                        case["divergence"] = "Prefect's cron dates differ from the wall-clock rule here"
                    cases.append(case)
    return cases


RRULES = [
    "FREQ=DAILY",
    "FREQ=HOURLY",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=9",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
    "DTSTART:20260101T023000\nRRULE:FREQ=DAILY",
    "DTSTART:20260101T090000\nRRULE:FREQ=DAILY;INTERVAL=3",
    "DTSTART:20260101T120000\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-1",
    "DTSTART:20260101T120000\nRRULE:FREQ=MONTHLY;BYDAY=2TU",
    "DTSTART:20260101T120000\nRRULE:FREQ=MONTHLY;BYDAY=-1FR",
    "DTSTART:20260101T080000\nRRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "DTSTART:20260101T000000\nRRULE:FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU;BYHOUR=2;BYMINUTE=30",
    "DTSTART:20260101T100000\nRRULE:FREQ=YEARLY;BYYEARDAY=1,100,200",
    "DTSTART:20260105T100000\nRRULE:FREQ=YEARLY;BYWEEKNO=10,20;BYDAY=MO",
    "DTSTART:20260101T100000\nRRULE:FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=TU,SU",
    "DTSTART:20260101T090000\nRRULE:FREQ=DAILY;UNTIL=20261231T090000",
    "DTSTART:20260301T013000\nRRULE:FREQ=DAILY;COUNT=400",
    "DTSTART:20260101T000000\nRRULE:FREQ=MINUTELY;INTERVAL=45",
    "DTSTART:20260101T000000\nRRULE:FREQ=MINUTELY;INTERVAL=7;BYHOUR=9,10",
    "FREQ=SECONDLY;INTERVAL=30;BYMINUTE=0",
    "DTSTART:20260101T000000\nRRULE:FREQ=HOURLY;INTERVAL=5;BYMINUTE=15",
    "DTSTART:20260101T090000\nRRULE:FREQ=DAILY\nEXDATE:20260615T090000,20260616T090000",
    "DTSTART:20260101T090000\nRRULE:FREQ=WEEKLY;BYDAY=SA\nRDATE:20260617T120000",
    "DTSTART:20260101T090000\nRRULE:FREQ=DAILY\nEXRULE:FREQ=WEEKLY;BYDAY=SA,SU",
    "DTSTART:20260101T060000\nRRULE:FREQ=DAILY;BYHOUR=6,18\nRRULE:FREQ=WEEKLY;BYDAY=SU;BYHOUR=12",
    "DTSTART;TZID=Europe/Berlin:20260101T090000\nRRULE:FREQ=DAILY",
    "DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY",
]


async def rrule_cases():
    cases = []
    for zone in ZONES:
        zone_starts = starts(zone)
        for rule_text in RRULES:
            for start in zone_starts:
                sched = RRuleSchedule(rrule=rule_text, timezone=zone)
                got = [iso(d) for d in await sched.get_dates(n=N, start=start)]
                # The rule reads every date's digits in the schedule's zone: drop Z and TZID.
                plain = re.sub(r"(\d{8}T\d{6})Z", r"\1", re.sub(r";TZID=[^:]+:", ":", rule_text))
                naive = dateutil.rrule.rrulestr(plain, dtstart=dt.datetime(2020, 1, 1), forceset=True)
                wall_start = start.replace(tzinfo=None) - dt.timedelta(hours=3)
                walls = naive.xafter(wall_start, count=N * 4, inc=True)
                rule = rule_localize(walls, zone, start.astimezone(UTC), N)
                case = {"schedule": {"rrule": rule_text, "timezone": zone}, "start": iso(start), "n": N, "prefect": got, "expected": rule}
                if not same(got, rule):
                    case["divergence"] = "dateutil moves wall-clock times in a DST gap an hour back"
                cases.append(case)
    return cases


INVALID = [
    {"interval": 0},
    {"interval": -60},
    {"cron": "*/0 * * * *"},
    {"cron": "1,,2 * * * *"},
    {"cron": "* * * * 5L"},
    {"cron": "60 * * * *"},
    {"cron": "* 24 * * *"},
    {"cron": "* * 32 * *"},
    {"cron": "* * * 13 *"},
    {"cron": "* * * *"},
    {"cron": "not a cron"},
    {"cron": "@fortnightly"},
    {"cron": "* * * * *", "timezone": "Mars/Olympus"},
    {"interval": 60, "timezone": "America/NewYork"},
    {"rrule": "FREQ=MONTHLY;BYMONTH=13"},
    {"rrule": "FREQ=FORTNIGHTLY"},
    {"rrule": "BYDAY=MO"},
    {"rrule": "FREQ=DAILY;INTERVAL=0"},
    {"rrule": "FREQ=DAILY;BYHOUR=25"},
    {"rrule": "FREQ=DAILY;" + "BYMINUTE=1;" * 600},
    {"rrule": "FREQ=DAILY", "timezone": "Nowhere/Land"},
]


def prefect_rejects(spec):
    try:
        if "interval" in spec:
            IntervalSchedule(interval=dt.timedelta(seconds=spec["interval"]), timezone=spec.get("timezone"))
        elif "cron" in spec:
            CronSchedule(**spec)
        else:
            RRuleSchedule(**spec)
    except Exception:
        return True
    return False


async def main():
    invalid = []
    for spec in INVALID:
        invalid.append({"schedule": spec, "prefect_rejects": prefect_rejects(spec)})
    golden = {
        "generator": "tests/schedules/generate_golden.py",
        "prefect": "3.9.1",
        "interval": await interval_cases(),
        "cron": await cron_cases(),
        "rrule": await rrule_cases(),
        "invalid": invalid,
    }
    for kind in ("interval", "cron", "rrule"):
        for case in golden[kind]:
            if "divergence" not in case:
                del case["prefect"]
    json.dump(golden, sys.stdout, indent=0, sort_keys=True)


asyncio.run(main())
