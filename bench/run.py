"""`make bench`: DynamoDB cost per operation, cold start, warm handler time, package size,
`make run` at 0, 10k and 100k stored incidents.

    .venv/bin/python bench/run.py [--sizes 1000,10000,100000] [--runs 10] [--warm-n 200]
                                  [--only counts,notify,stats,oncall,integrations,storm,cold,warm,package,local]
                                  [--local-n 100]

Prints tables and PASS/FAIL against the targets; exits 0 whatever the targets say (it is a
benchmark, not a test), 1 only when a part could not be measured at all. The default sizes (1k,
10k, 100k) take about 20 minutes on 2 cores (docs/benchmark.md), most of it seeding moto at 100k
and moto's whole-table Query; `--sizes 1000,10000` is a quicker look.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import BENCH, MAIN_PYTHON, REFERENCE, REFERENCE_PYTHON, subprocess_env, use_fake_aws  # noqa: E402

use_fake_aws()

DEFAULT_SIZES = "1000,10000,100000"
PAGE_OPS = ("list page: status", "list page: status+source", "list page: no filter")
FLAT_GROWTH = 1.1
COLD_RATIO = 0.5
PACKAGE_KB = 100
LAMBDA_RESPONSE_MB = 6
LOCAL_SIZES = (0, 10_000, 100_000)
LOCAL_GROWTH = 1.2
LOCAL_RESTART_S = 20


def say(text: str = "") -> None:
    print(text, flush=True)


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 or i == 1 else str(c).rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    say(line(header))
    say("  ".join("-" * w for w in widths))
    for row in rows:
        say(line(row))


def short(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def growth(first: float, last: float) -> float:
    return last / first if first else (1.0 if last == first else float("inf"))


# --- parts ---------------------------------------------------------------------------------


def part_counts(sizes: list[int], targets: list[tuple[str, bool | None, str]]) -> None:
    from dynamo_counts import (BIG_PAGE_LIMIT, LONG_HISTORY, PAGE_LIMIT, SKEW_CASES, SKEW_NONE_TEAM,
                               SKEW_RARE_TEAM, WALK_STATUS, measure_size, skewed_checks)

    say("## 1. DynamoDB cost per operation (moto in-process; botocore after-call hooks)")
    results = []
    for size in sizes:
        started = time.perf_counter()
        results.append(measure_size(size, log=say))
        say(f"  {size:,} incidents measured in {time.perf_counter() - started:.1f}s")
    say()
    first, last = results[0], results[-1]
    header = ["operation", f"DynamoDB calls (at {short(last.size)})",
              *[f"calls/read @{short(r.size)}" for r in results], "max read/call", "growth"]
    rows = []
    for name, op in last.ops.items():
        cells = []
        for r in results:
            o = r.ops[name]
            cells.append(f"{o.call_count}/{o.items_read}")
        if name.startswith("walk"):
            per_item = [r.ops[name].items_read / max(1, r.ops[name].returned) for r in results]
            g = growth(per_item[0], per_item[-1])
        else:
            g = growth(first.ops[name].items_read, op.items_read)
        rows.append([name, op.kinds, *cells, str(max(r.ops[name].max_read_per_call for r in results)),
                     f"{g:.2f}×"])
    table(header, rows)
    walk = last.ops[f"walk every page: status={WALK_STATUS}"]
    say(f"calls/read = DynamoDB calls / items read (ScannedCount of a Query, 1 per GetItem that found "
        f"an item). Page size {PAGE_LIMIT}. Walk at {short(last.size)}: {walk.pages} pages, "
        f"{walk.returned} incidents, {walk.items_read / max(1, walk.returned):.3f} items read per "
        f"incident returned (its growth is per incident returned).")
    say(f"Seeded mix at {short(last.size)}: {last.seeded_by_status}; DynamoDB operations seen: "
        f"{', '.join(sorted(last.operations_seen))}")
    say()

    long_name = f"status change, {LONG_HISTORY:,} entries"
    long_item = f"incident item, {LONG_HISTORY + 1:,} entries"
    long_request = f"status change request, {LONG_HISTORY:,} entries before"
    page_bytes = f"list page response, {BIG_PAGE_LIMIT} items"
    say("### Sizes (bytes; DynamoDB item size rules; request = the JSON body botocore sent)")
    size_names = list(last.sizes)
    table(["what", "", *[f"@{short(r.size)}" for r in results]],
          [[name, "", *[f"{r.sizes.get(name, 0):,}" for r in results]] for name in size_names])
    say(f"A status change writes the incident's few changed attributes and one entry item; the "
        f"incident item holds history_count, never the entries, so neither grows with the history "
        f"({LONG_HISTORY:,} entries vs 3). The read-back Query reads the incident and its 100 newest entries.")
    say()

    say(f"### Skewed set (issue #10): '{SKEW_CASES[3][2]}' matches nothing, '{SKEW_CASES[2][2]}' 0.1 %; "
        f"team '{SKEW_NONE_TEAM}' owns nothing, '{SKEW_RARE_TEAM}' 0.1 % (issue #24); "
        f"page size {PAGE_LIMIT}; cursor = the one a page ending at the middle incident carries")
    skew_rows = []
    for name in last.skew:
        op = last.skew[name]
        cells = [f"{r.skew[name].call_count}/{r.skew[name].items_read}/{r.skew[name].returned}"
                 for r in results]
        skew_rows.append([name, f"{op.partitions}×{op.index}", *cells,
                          f"{(PAGE_LIMIT + 1) * op.partitions}",
                          f"{growth(first.skew[name].items_read, op.items_read):.2f}×",
                          f"{growth(first.skew[name].read_per_returned, op.read_per_returned):.2f}×"])
    table(["filters", "indexes queried", *[f"calls/read/returned @{short(r.size)}" for r in results],
           "bound", "read growth", "read/returned growth"], skew_rows)
    say("bound = (limit+1) × indexes queried. 'read growth' is raw items read per page; where a "
        "filter matches more incidents as the table grows (the 0.1 % source), the page returns "
        "more and so reads more, up to the bound: flatness is judged per incident returned.")
    wasteful = [f"{name} ({op.items_read} read, {op.returned} returned)" for name, op in last.skew.items()
                if op.items_read - op.returned > op.partitions]
    if wasteful:
        say(f"Note: read beyond what the page returns plus one per index queried at {short(last.size)}: "
            f"{'; '.join(wasteful)}. Within the bound, but the Query's key condition runs past the "
            f"filter's match (e.g. by_status_source `source_created < '<source>$'` reads on into the "
            f"sources below).")
    say()

    worst = max(growth(first.ops[n].items_read, last.ops[n].items_read) for n in PAGE_OPS)
    targets.append((f"items read per page flat {short(first.size)}→{short(last.size)} "
                    f"(growth ≤ {FLAT_GROWTH}×; worst {worst:.2f}×)", worst <= FLAT_GROWTH, ""))
    status_page = [r.ops["list page: status"] for r in results]
    ok = all(o.call_count == 1 and o.items_read <= PAGE_LIMIT + 1 for o in status_page)
    targets.append((f"status page = 1 Query reading ≤ limit+1 = {PAGE_LIMIT + 1} items at every size", ok, ""))
    changes = [r.ops["status change"] for r in results]
    targets.append(("a status change is one write call, TransactWriteItems (the incident update + the "
                    "history entry put), then one Query reading back the incident and its 100 newest "
                    f"entries ({changes[-1].kinds})",
                    all(o.kind_list() == ["TransactWriteItems", "Query"] for o in changes), ""))
    gets = [r.ops["get"] for r in results]
    targets.append((f"a get is one Query ({gets[-1].kinds})",
                    all(o.kind_list() == ["Query"] for o in gets), ""))
    replays = [r.ops["create, Idempotency-Key replay"] for r in results]
    targets.append((f"an Idempotency-Key replay is a GetItem and a Query for its history ({replays[-1].kinds})",
                    all(o.kind_list() == ["GetItem", "Query"] for o in replays), ""))
    scans = [s for r in results for s in ("Scan",) if s in r.operations_seen]
    targets.append(("no Scan anywhere", not scans, ""))

    longs = [r.ops[long_name] for r in results]
    ok = all(o.kind_list() == ["TransactWriteItems", "Query"] and o.items_read <= 101 for o in longs)
    targets.append((f"status change on an incident with {LONG_HISTORY:,} entries: the same 2 calls "
                    f"({longs[-1].kinds}, {longs[-1].items_read} items read back)", ok, ""))
    item_growth = max(r.sizes[long_item] / r.sizes["incident item, 3 entries"] for r in results)
    request_growth = max(r.sizes[long_request] / r.sizes["status change request, 1 entry before"]
                         for r in results)
    targets.append((f"incident item size does not grow with its history: {last.sizes[long_item]} B with "
                    f"{LONG_HISTORY + 1:,} entries vs {last.sizes['incident item, 3 entries']} B with 3 "
                    f"(≤ {FLAT_GROWTH}×; {item_growth:.2f}×); write request {last.sizes[long_request]} B vs "
                    f"{last.sizes['status change request, 1 entry before']} B ({request_growth:.2f}×)",
                    item_growth <= FLAT_GROWTH and request_growth <= FLAT_GROWTH, ""))
    big = max(r.sizes[page_bytes] for r in results)
    targets.append((f"{BIG_PAGE_LIMIT}-item list page response {big / 1024:.1f} KB "
                    f"(≤ {LAMBDA_RESPONSE_MB} MB, Lambda's response limit)",
                    big <= LAMBDA_RESPONSE_MB * 1024 * 1024, ""))

    checks = skewed_checks(results)
    cases = len(last.skew)
    targets.append((f"skewed set, {cases} pages (every filter combination, with and without a cursor) at "
                    f"{', '.join(short(r.size) for r in results)}: DynamoDB calls per page = indexes "
                    f"queried (1 for every filter, 4 for a team alone: one per status)"
                    + (f" — {checks['calls'][:3]}" if checks['calls'] else ""),
                    not checks["calls"], ""))
    targets.append((f"skewed set: items read per page ≤ (limit+1) × indexes queried, ≤ limit+1 = "
                    f"{PAGE_LIMIT + 1} per call" + (f" — {(checks['items'] + checks['per_call'])[:3]}"
                                                    if checks['items'] or checks['per_call'] else ""),
                    not checks["items"] and not checks["per_call"], ""))
    targets.append((f"skewed set: calls per page flat {short(first.size)}→{short(last.size)} "
                    f"(growth ≤ {FLAT_GROWTH}×; worst {checks['call_growth']:.2f}×)",
                    checks["call_growth"] <= FLAT_GROWTH, ""))
    targets.append((f"skewed set: items read per incident returned flat {short(first.size)}→{short(last.size)} "
                    f"for every filter served by one Query (growth ≤ {FLAT_GROWTH}×; worst "
                    f"{checks['read_per_returned_growth']:.2f}×)",
                    checks["read_per_returned_growth"] <= FLAT_GROWTH, ""))
    team_pages = [(r, name) for r in results for name in r.skew if "team" in name]
    worst = max((r.skew[name].items_read for r, name in team_pages), default=0)
    over = [f"{name} @{short(r.size)}" for r, name in team_pages
            if r.skew[name].items_read > (PAGE_LIMIT + 1) * r.skew[name].partitions
            or r.skew[name].call_count != r.skew[name].partitions]
    growth_team = max((growth(first.skew[n].read_per_returned, last.skew[n].read_per_returned)
                       for n in last.skew if "team" in n and last.skew[n].partitions == 1), default=1.0)
    merged, bound = checks["merged_over_read"], checks["merged_over_read_bound"]
    targets.append((f"skewed set, team filter ({SKEW_NONE_TEAM}: none, {SKEW_RARE_TEAM}: 0.1 %; alone and "
                    f"with status; first page and from a cursor) at {', '.join(short(r.size) for r in results)}: "
                    f"≤ (limit+1) × queries read per page (most {worst}); with status flat per incident "
                    f"returned (worst {growth_team:.2f}×); alone, read beyond the page ≤ (limit+1) × 4 − limit "
                    f"= {bound} whatever the table's size (most {merged})" + (f" — {over[:3]}" if over else ""),
                    bool(team_pages) and not over and growth_team <= FLAT_GROWTH and merged <= bound, ""))


def last_json(stdout: str) -> dict:
    """The script's result: its last line (the app's own log lines and EMF come before it)."""
    return json.loads(stdout.strip().splitlines()[-1])


def part_notify(sizes: list[int], targets: list) -> None:
    """The notification schedules read only open incidents; the API pays nothing for them."""
    from notify_counts import OPEN, measure

    say(f"## Notifications: DynamoDB calls (items read) with the same {OPEN} open incidents")
    results = {size: measure(size) for size in sizes}
    names = list(results[sizes[0]])
    table(["operation", "", *[short(size) for size in sizes]],
          [[name, "", *[f"{results[s][name].calls} ({results[s][name].items_read})" for s in sizes]]
           for name in names])
    say()
    first, last = results[sizes[0]], results[sizes[-1]]
    for name in ("reminder run", "digest"):
        flat = (growth(first[name].calls, last[name].calls) <= FLAT_GROWTH
                and growth(first[name].items_read, last[name].items_read) <= FLAT_GROWTH)
        targets.append((f"{name}: calls and items read flat {short(sizes[0])}→{short(sizes[-1])} "
                        f"with {OPEN} open ({last[name].calls} calls, {last[name].items_read} items)",
                        flat, ""))
    # Without notifications: a create is the id's UpdateItem, the routes' GetItem (docs/routing.md)
    # and one TransactWriteItems; a status change one TransactWriteItems and the Query answering.
    for name, alone in (("API create", 3), ("API status change", 2)):
        targets.append((f"{name}: no DynamoDB call for notifications ({last[name].calls} calls, "
                        "the same as without them)", last[name].calls == alone, ""))


def part_oncall(sizes: list[int], targets: list) -> None:
    """Issue 23: an escalation run reads only the due incidents; a storm stays within Telegram's limits."""
    from oncall_counts import DUE, STORM, measure_run, storm

    say(f"## On call: one escalation run with {DUE} incidents due (DynamoDB calls, items read)")
    costs = {size: measure_run(size) for size in sizes}
    table(["stored incidents", *[short(size) for size in sizes]],
          [["escalate run", *[f"{costs[s].calls} ({costs[s].items_read})" for s in sizes]]])
    first, last = costs[sizes[0]], costs[sizes[-1]]
    flat = (growth(first.calls, last.calls) <= FLAT_GROWTH
            and growth(first.items_read, last.items_read) <= FLAT_GROWTH)
    targets.append((f"escalation run: calls and items read flat {short(sizes[0])}→{short(sizes[-1])} with "
                    f"{DUE} due ({last.calls} calls, {last.items_read} items)", flat, ""))
    say()
    result = storm()
    say(f"## On call: a storm of {STORM} incidents opened in one minute for one team")
    table(["team chat, most in a minute", "DMs to one person, most in a minute", "team chat total",
           "DMs total", "openings all out after", "rule 2 paged (15 min)"],
          [[str(result.team_chat_per_minute), str(result.direct_per_minute), str(result.team_chat_total),
            str(result.direct_total), f"{result.minutes} min", str(result.escalated)]])
    say()
    targets.append((f"storm of {STORM}: at most one direct message a minute per person "
                    f"({result.direct_per_minute}) and at most 20 a minute in the team chat "
                    f"({result.team_chat_per_minute})",
                    result.direct_per_minute <= 1 and result.team_chat_per_minute <= 20, ""))


def part_stats(sizes: list[int], targets: list) -> None:
    from stats_counts import part  # GET /stats and the board (issue 14)

    part(sizes, targets, say, table)


def part_integrations(sizes: list[int], targets: list) -> None:
    """Issue 17: DynamoDB calls per alert / per PagerDuty event (bench/integration_counts.py),
    at the smallest and the largest size."""
    from integration_counts import BATCH, measure_size

    say(f"## 1b. Monitoring integrations: DynamoDB calls per alert ({BATCH}-alert Alertmanager batch) "
        "and per PagerDuty event")
    ends = sorted({sizes[0], sizes[-1]})
    results = [(size, measure_size(size, log=say)) for size in ends]
    header = ["event", f"calls (at {short(ends[-1])})",
              *[f"calls/read per event @{short(size)}" for size, _ in results], "max read/call"]
    rows = []
    for name, cost in results[-1][1].items():
        cells = [f"{r[name].calls_per_event:g}/{r[name].read_per_event:g}" for _, r in results]
        rows.append([name, cost.kinds, *cells, str(max(r[name].max_read_per_call for _, r in results))])
    table(header, rows)
    say()
    flat = all(first.calls == last.calls and first.items_read == last.items_read
               for first, last in zip(results[0][1].values(), results[-1][1].values()))
    targets.append((f"integrations: calls and reads per alert/event the same at {short(ends[0])} and "
                    f"{short(ends[-1])} (constant, not growing with the table)", flat, ""))


def part_storm(targets: list) -> None:
    """Issue 25: an alert storm. The integration routes hand the request off in O(1) calls; the
    intake consumer applies the alerts (bench/storm_counts.py)."""
    from storm_counts import STORM_REQUESTS, measure

    say("## 1c. Alert storm: the request hands off, the intake consumer applies (moto: DynamoDB, SQS, S3)")
    result = measure(log=say)
    big, storm = result["big"], result["storm"]
    say()
    targets.append((f"storm: a {big['bytes'] / 1024:.0f} KiB Alertmanager batch ({big['alerts']:,} alerts) is "
                    f"answered with {len(big['request_calls'])} DynamoDB/SQS/S3 calls (≤ 5) in "
                    f"{big['request_ms_128']:.0f} ms scaled to 128 MB (< 5000; {big['cpu_ms']:.0f} ms of CPU here), "
                    f"and every alert is applied",
                    big["alerts"] >= 3000 and len(big["request_calls"]) <= 5 and big["request_ms_128"] < 5000
                    and big["all_applied"], ""))
    targets.append((f"storm: PagerDuty /v2/enqueue answers with {len(big['pagerduty_calls'])} calls (≤ 5) in "
                    f"{big['pagerduty_ms_128']:.0f} ms scaled to 128 MB, and the event is applied",
                    len(big["pagerduty_calls"]) <= 5 and big["pagerduty_ms_128"] < 5000 and big["pagerduty_applied"], ""))
    worst = max(storm["messages_per_minute"].values(), default=0)
    targets.append((f"storm: {storm['alerts']:,} alerts over {STORM_REQUESTS} requests all applied once "
                    f"({dict(storm['outcomes'])}), every incident in its last alert's state "
                    f"({storm['wrong']} wrong), {storm['dynamodb_per_alert']:.2f} DynamoDB calls per alert (≤ 3), "
                    f"at most {worst} messages to the group a simulated minute (≤ 20)",
                    storm["all_applied"] and storm["states_right"] and storm["dynamodb_per_alert"] <= 3
                    and worst <= 20, ""))


@contextlib.contextmanager
def embedded_dynamodb() -> Iterator[str]:
    """The embedded DynamoDB of `make run` (localaws/: moto with DynamoDB's costs) on a free
    local port, with the app's table, keeping nothing. Yields its endpoint, for
    AWS_ENDPOINT_URL_DYNAMODB. moto keeps its state per process: reset at the start."""
    import socket
    import urllib.request

    import botocore.session

    from benchenv import TABLE_NAME
    from chalicelib.store import create_table
    from localaws.server import EmbeddedDynamoDB

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = EmbeddedDynamoDB(port)
    server.start()
    try:
        urllib.request.urlopen(urllib.request.Request(f"{server.url}/moto-api/reset", method="POST"),
                               timeout=30).close()
        create_table(botocore.session.get_session().create_client("dynamodb", endpoint_url=server.url),
                     TABLE_NAME)
        yield server.url
    finally:
        server.stop()


def part_local(n: int, targets: list) -> None:
    """`make run` itself at 0, 10k and 100k stored incidents (bench/local_bench.py)."""
    from local_bench import PAGE, measure

    say(f"## 5. make run at {', '.join(f'{s:,}' for s in LOCAL_SIZES)} stored incidents "
        f"(medians of {n} requests each, over HTTP, the three runs served in turn)")
    runs = measure(list(LOCAL_SIZES), n, say)
    kinds = ("create", "status change", "get", "list page")
    table(["stored incidents", "make run healthy after", *[f"{k} (median)" for k in kinds], "stop"],
          [[f"{run.size:,}", f"{run.healthy_after:.1f} s", *[f"{run.median_ms(k):.1f} ms" for k in kinds],
            f"{run.stopped_after:.1f} s"] for run in runs])
    say(f"list page = GET /incidents?status=new&limit={PAGE}; status change = PATCH to in_progress; "
        "healthy after = from `make run` to /health 200 (which reads the table), the kept items loaded.")
    say()
    at = {run.size: run for run in runs}
    zero, largest = at[0], at[max(LOCAL_SIZES)]
    worst = max(run.median_ms("create") for run in runs) / zero.median_ms("create")
    targets.append((f"make run: create median at {', '.join(short(s) for s in LOCAL_SIZES)} stored incidents "
                    f"grows ≤ {LOCAL_GROWTH}× ({worst:.2f}×)", worst <= LOCAL_GROWTH, ""))
    targets.append((f"make run: restart with {largest.size:,} incidents healthy in ≤ {LOCAL_RESTART_S} s "
                    f"({largest.healthy_after:.1f} s)", largest.healthy_after <= LOCAL_RESTART_S, ""))
    for kind in kinds[1:]:
        ratio = largest.median_ms(kind) / zero.median_ms(kind)
        targets.append((f"make run: {kind} at {short(largest.size)} within {LOCAL_GROWTH}× of at 0 "
                        f"({ratio:.2f}×)", ratio <= LOCAL_GROWTH, ""))


COLD_KINDS = {
    "api": "API request: GET /incidents?status=new",
    "sns": "SNS alarm record (ALARM: opens an incident)",
    "telegram": "Telegram update (a message: opens an incident)",
}


def part_cold(runs: int, targets: list) -> None:
    """Process start -> handler -> response, as Lambda runs the app, against the reference's process
    start -> first response through its own ASGI app; in alternating pairs (reference first in
    one round, the app first in the next), so a busy spell of the machine hits both alike."""
    import statistics as st

    from coldstart import first_response, run_once
    from importtime import import_profile
    from no_observability import SWITCH

    say(f"## 2. Cold start: process start to first response (median of {runs} alternating paired runs)")
    # Each side's own code compiled at every start, its libraries from their cached bytecode:
    # Lambda runs the app from the package's .py files, on a read-only file system.
    env = {**subprocess_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    ref_asgi = [str(REFERENCE_PYTHON), str(REFERENCE / "asgi_cold_start.py")]
    ref_client = [str(REFERENCE_PYTHON), str(REFERENCE / "cold_start.py")]
    ours_client = [str(MAIN_PYTHON), str(BENCH / "app_cold_start.py")]
    lambda_cmd = lambda kind: [str(MAIN_PYTHON), str(BENCH / "app_lambda_cold_start.py"), kind]  # noqa: E731
    floor_cmd = [str(MAIN_PYTHON), str(BENCH / "floor_cold_start.py")]
    samples: dict[str, list[dict]] = {name: [] for name in
                                      ("ref", *COLD_KINDS, "bare", "floor", "ref_client", "ours_client")}
    with embedded_dynamodb() as endpoint:
        lambda_env = {**env, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}
        runs_of = {
            "ref": (ref_asgi, env),
            **{kind: (lambda_cmd(kind), lambda_env) for kind in COLD_KINDS},
            "bare": (lambda_cmd("api"), {**lambda_env, SWITCH: "1"}),  # without logs and metrics
            "floor": (floor_cmd, lambda_env),
            "ref_client": (ref_client, env),
            "ours_client": (ours_client, env),
        }
        for cmd, cmd_env in runs_of.values():
            run_once(cmd, cmd_env)  # untimed: warms the page cache (and any bytecode cache)
        for round_number in range(runs):
            pair = ["ref", "api"] if round_number % 2 == 0 else ["api", "ref"]
            rest = ["sns", "telegram", "bare", "floor"] + (["ref_client", "ours_client"] if round_number % 2 == 0
                                                  else ["ours_client", "ref_client"])
            for name in pair + rest:
                cmd, cmd_env = runs_of[name]
                result = run_once(cmd, cmd_env)
                result["json"] = last_json(result["stdout"])
                result["response"] = first_response(result, result["json"])
                samples[name].append(result)

    def median(name: str, key: str) -> float:
        return st.median(r[key] if key in r else r["json"][key] for r in samples[name])

    def ratio(name: str, to: str = "ref", key: str = "response") -> float:
        """The median of the per-round ratios: each pair ran back to back."""
        return st.median(o[key] / r[key] for o, r in zip(samples[name], samples[to]))

    paired = {kind: ratio(kind) for kind in (*COLD_KINDS, "bare", "floor")}
    rows = []
    for kind, label in [*COLD_KINDS.items(), ("bare", "API request, logs and metrics taken out"),
                        ("floor", "floor: botocore, one client, the same Query (no Chalice, no app)")]:
        rows.append([label if kind == "floor" else f"this app, {label}",
                     f"{median(kind, 'response') * 1000:.0f} ms", f"{median(kind, 'wall') * 1000:.0f} ms",
                     f"{median(kind, 'import_app') * 1000:.0f} ms" if kind != "floor" else "",
                     f"{median(kind, 'maxrss_kb') / 1024:.0f} MB", f"{paired[kind]:.2f}×"])
    rows.append(["reference (FastAPI + SQLAlchemy + SQLite) through its ASGI app",
                 f"{median('ref', 'response') * 1000:.0f} ms", f"{median('ref', 'wall') * 1000:.0f} ms",
                 f"{median('ref', 'import_app') * 1000:.0f} ms", f"{median('ref', 'maxrss_kb') / 1024:.0f} MB",
                 "1.00×"])
    table(["as Lambda runs it (event → handler, no test client)", "first response", "to exit",
           "import app", "peak memory", "ratio (median of pairs)"], rows)
    say(f"first response = process start to the handler's answer (Lambda sends it then; the exit, "
        f"interpreter teardown, is in 'to exit'). Logs and metrics cost "
        f"{(median('api', 'response') - median('bare', 'response')) * 1000:+.0f} ms of the API request's. "
        f"DynamoDB: the embedded one (moto server), real HTTP. Peak memory: the child's ru_maxrss. "
        f"CPU seconds, API request / reference: {ratio('api', key='cpu'):.2f}×.")
    say(f"Through the frameworks' test clients, for comparison: this app {median('ours_client', 'response') * 1000:.0f} ms "
        f"(chalice.test.Client, DynamoDB answered by Stubber), the reference "
        f"{median('ref_client', 'response') * 1000:.0f} ms (fastapi TestClient): {ratio('ours_client', 'ref_client'):.2f}×. "
        f"chalice.test imports Chalice's CLI package, which Lambda never loads.")
    profile = import_profile(runs=5)
    say(f"import app: {profile['import_app'] * 1000:.0f} ms (-X importtime, median of 5); most expensive "
        f"imports (self time per package): "
        + ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in profile["top"]))
    heavy = sorted({name for name in profile["modules"]} & {"boto3", "s3transfer"})
    say(f"boto3's package and s3transfer on the import path: {', '.join(heavy) if heavy else 'none'}")
    say()
    targets.append((f"cold start, API request as Lambda runs it ≤ {COLD_RATIO}× the reference through its "
                    f"ASGI app, to the first response ({paired['api']:.2f}×; median of {runs} paired runs; "
                    f"SNS record {paired['sns']:.2f}×, Telegram update {paired['telegram']:.2f}×; "
                    f"the floor {paired['floor']:.2f}×)",
                    paired["api"] <= COLD_RATIO, ""))


def app_warm_subprocess(n: int, without_observability: bool, endpoint: str) -> dict:
    """bench/app_warm.py in its own process: the app's log lines and EMF go to its stdout, as in
    Lambda, not into this report; and "without" needs the stand-ins in place before `import app`."""
    from no_observability import SWITCH

    env = {**subprocess_env(), "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
           **({SWITCH: "1"} if without_observability else {})}
    proc = subprocess.run([str(MAIN_PYTHON), str(BENCH / "app_warm.py"), str(n)],
                          capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"app warm run failed: {proc.stderr.strip()[-1500:]}")
    return last_json(proc.stdout)


def part_warm(n: int, targets: list) -> None:
    say(f"## 3. Warm handler time, median per request of {n} (this app: its CPU time, against the "
        f"embedded DynamoDB)")
    with embedded_dynamodb() as endpoint:
        ours = app_warm_subprocess(n, without_observability=False, endpoint=endpoint)
    with embedded_dynamodb() as endpoint:
        bare = app_warm_subprocess(n, without_observability=True, endpoint=endpoint)
    proc = subprocess.run([str(REFERENCE_PYTHON), str(REFERENCE / "warm.py"), str(n)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"reference warm run failed: {proc.stderr.strip()[-1500:]}")
    ref = json.loads(proc.stdout)
    rows = [[kind, f"{ours[kind] * 1000:.2f} ms", f"{ref[kind] * 1000:.2f} ms", f"{ours[kind] / ref[kind]:.2f}×",
             f"{bare[kind] * 1000:.2f} ms", f"{(ours[kind] - bare[kind]) * 1000:+.2f} ms"]
            for kind in ("create", "get", "list", "patch")]
    table(["request", "this app", "reference (in-memory SQLite)", "ratio", "this app without logs+metrics",
           "cost of logs+metrics"], rows)
    say("list = GET /incidents?status=new&limit=50 (this app deserializes a 51-item Query answer). "
        "This app: CPU seconds of its process per request (its code and botocore's, real HTTP to the "
        "embedded DynamoDB, whose own time is another process's, as in AWS); the reference: wall time "
        "with SQLite in the process.")
    say("Logs and metrics: one JSON summary line per request, an event line where an incident changes, "
        "EMF documents; written to a pipe, as Lambda's stdout is.")
    say()


def part_package(targets: list) -> None:
    from package_size import package_size_kb

    say("## 4. Deployment package (chalice package --stage dev)")
    kb = package_size_kb()
    say(f"deployment.zip: {kb:.1f} KB")
    say()
    targets.append((f"package ≤ {PACKAGE_KB} KB ({kb:.1f} KB)", kb <= PACKAGE_KB, ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"stored incidents (default {DEFAULT_SIZES})")
    parser.add_argument("--runs", type=int, default=10, help="cold start runs per side (default 10)")
    parser.add_argument("--warm-n", type=int, default=200, help="warm requests per kind (default 200)")
    parser.add_argument("--local-n", type=int, default=100, help="make run requests per kind and size (default 100)")
    parser.add_argument("--only", default="counts,notify,stats,oncall,integrations,storm,cold,warm,package,local")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    parts = set(args.only.split(","))
    targets: list[tuple[str, bool | None, str]] = []
    failed_parts = []
    started = time.perf_counter()
    say(f"# Incident API benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"python {sys.version.split()[0]})")
    say()
    for name, run in (("counts", lambda: part_counts(sizes, targets)),
                      ("notify", lambda: part_notify(sizes, targets)),
                      ("stats", lambda: part_stats(sizes, targets)),
                      ("oncall", lambda: part_oncall(sizes, targets)),
                      ("integrations", lambda: part_integrations(sizes, targets)),
                      ("storm", lambda: part_storm(targets)),
                      ("cold", lambda: part_cold(args.runs, targets)),
                      ("warm", lambda: part_warm(args.warm_n, targets)),
                      ("package", lambda: part_package(targets)),
                      ("local", lambda: part_local(args.local_n, targets))):
        if name not in parts:
            continue
        try:
            run()
        except Exception:  # a part that cannot be measured is reported, the others still run
            failed_parts.append(name)
            say(f"!! {name} could not be measured:")
            say(traceback.format_exc())
    say("## Targets")
    for text, ok, _ in targets:
        say(f"{'PASS' if ok else 'FAIL'}  {text}")
    for name in failed_parts:
        say(f"ERROR {name}: not measured")
    say(f"\n(total {time.perf_counter() - started:.0f}s)")
    return 1 if failed_parts else 0


if __name__ == "__main__":
    sys.exit(main())
