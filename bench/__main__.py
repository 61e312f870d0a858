"""`python -m bench`: measure the ledger as real processes and write BENCHMARKS.md.

Every figure stands beside a baseline measured in the same run on the same
database, so the ratio holds on a noisy machine. See BENCHMARKS.md for the
figures and `python -m bench --help` for the knobs.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import uvloop

from bench import baselines, phases
from bench.service import Service
from bench.stats import Run

APPEND_ROUNDS = 3
"""Alternating rounds of the library floor and the appends over HTTP."""
BATCH_ROUNDS = 3
"""Alternating rounds of raw asyncpg inserts and batched ingest over HTTP."""
READ_ROUNDS = 3
"""Rounds of each read over HTTP, each followed by the same query in-process."""
BATCH_CLIENTS = 8
"""Concurrent batch clients: enough for each worker to check one batch while its last
one commits."""


@dataclass
class Report:
    """Figures gathered by the phases, rendered as BENCHMARKS.md."""

    command: str
    speeds: list[float] = field(default_factory=list)
    """Seconds a pure-Python loop took, at the start of the run and at its end."""
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, figure: str, baseline: str, ratio: str, target: str) -> None:
        self.rows.append((what, figure, baseline, ratio, target))
        print(f"  {what}: {figure} | baseline {baseline} | {ratio} | {target}", flush=True)

    def markdown(self) -> str:
        machine = (
            f"{platform.node()}: {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}, "
            f"Python {platform.python_version()}"
        )
        lines = [
            "# Benchmarks",
            "",
            "Measured by `python -m bench` (bench/): the service runs as real processes",
            "(`ledger serve`, `ledger projections run`) and is driven over HTTP on loopback by a",
            "load generator in a separate process. Each figure stands beside a baseline measured",
            "in the same run against the same PostgreSQL server.",
            "",
            f"- Machine: {machine}",
            "- Python speed: a pure-Python loop of 10 million additions took "
            + " s at the start of the run and ".join(f"{s:.2f}" for s in self.speeds)
            + " s at its end (figures bound by the interpreter scale with it)",
            f"- Reproduce: `{self.command}`",
            f"- Run at: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "",
            "| measure | figure | baseline (same run) | ratio | target |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {' | '.join(row)} |" for row in self.rows]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs for the read phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load phase")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--workers", type=int, default=1, help="`ledger serve --workers`")
    parser.add_argument("--output", default="BENCHMARKS.md")
    return parser.parse_args()


def python_speed() -> float:
    """Seconds this interpreter takes for 10 million additions: how fast the machine's
    Python is right now (it has differed 2x between machines of one kind)."""
    started = time.perf_counter()
    total = 0
    for n in range(10_000_000):
        total += n
    return time.perf_counter() - started


def database_url(workdir: Path) -> str:
    url = os.environ.get("LEDGER_DATABASE_URL")
    if url:
        return url
    from ledger.embedded import start_embedded

    return start_embedded(workdir / "pg", delete_on_exit=True)


def main() -> None:
    args = parse_args()
    if args.quick:
        args.jobs, args.seconds = min(args.jobs, 20_000), min(args.seconds, 3.0)
    command = "python -m bench" + (" --quick" if args.quick else "")
    command += f" --jobs {args.jobs} --seconds {args.seconds:g}"
    if args.workers > 1:
        command += f" --workers {args.workers}"
    report = Report(command=command)
    report.speeds.append(python_speed())
    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    url = database_url(workdir)
    print(f"bench: database {url}, work in {workdir}", flush=True)
    try:
        # The server's own loop: the HTTP clients and the asyncpg baselines run on it too.
        uvloop.run(run_all(args, url, workdir, report))
        report.speeds.append(python_speed())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    Path(args.output).write_text(report.markdown())
    print(f"bench: wrote {args.output}", flush=True)


def schema() -> str:
    return f"bench_{secrets.token_hex(4)}"


async def run_all(args: argparse.Namespace, url: str, workdir: Path, report: Report) -> None:
    seconds = args.seconds

    # 1. Single-event appends over HTTP vs the library's one-event-per-save floor, in
    # alternating rounds: the floor moves with the machine as much as the appends do.
    print("bench: single-event appends", flush=True)
    service = Service(url, schema(), workdir, projections=False, workers=args.workers)
    service.run("migrate")
    service.start()
    try:
        token = phases.writer_token(service)
        rounds: list[tuple[Run, Run]] = []
        for n in range(APPEND_ROUNDS):
            floor = baselines.library_floor(url, schema(), seconds)
            appends = await phases.single_appends(
                service.url, token, clients=64, seconds=seconds, prefix=f"append{n}"
            )
            print(f"  round {n + 1}: {appends.rate:,.0f}/s vs {floor.rate:,.0f}/s", flush=True)
            rounds.append((appends, floor))
            _errors(report, f"single appends, round {n + 1}", appends)
        # The round with the median ratio stands for the phase; the note lists them all.
        rounds.sort(key=lambda r: r[0].rate / r[1].rate)
        appends, floor = rounds[len(rounds) // 2]
        report.add(
            "single-event appends over HTTP, 64 clients (events/s; p50 / p99)",
            f"{appends.rate:,.0f}/s; {appends.p50_ms:.1f} / {appends.p99_ms:.1f} ms",
            f"{floor.rate:,.0f}/s (library, one event per save)",
            f"{appends.rate / floor.rate:.1f}x",
            ">= 4x",
        )
        report.notes.append(
            f"Single-event appends ran in {APPEND_ROUNDS} rounds of {seconds:g} s, each after"
            " the library floor's own round; the table gives the round with the median ratio."
            " The floor saves the ledger's own Job, whose events are made by its faster"
            " `trigger_event`, through the library's application, mapper and recorder."
            " All rounds (appends / floor = ratio): "
            + "; ".join(
                f"{a.rate:,.0f} / {f.rate:,.0f} = {a.rate / f.rate:.1f}x" for a, f in rounds
            )
            + "."
        )

        # 2. Batched ingest vs raw asyncpg inserts of the same rows, in alternating rounds
        # as for single appends: the two have swung by a fifth between runs on one machine.
        print("bench: batched ingest", flush=True)
        batch_rounds: list[tuple[Run, Run]] = []
        spread: list[list[int]] = []
        for n in range(BATCH_ROUNDS):
            raw = await baselines.raw_inserts(url, schema(), seconds)
            ingest = await phases.batched_ingest(
                service.url,
                token,
                clients=BATCH_CLIENTS,
                seconds=seconds,
                on_open=lambda: spread.append(service.connections_per_worker()),
                prefix=f"ingest{n}",
            )
            print(f"  round {n + 1}: {ingest.rate:,.0f}/s vs {raw.rate:,.0f}/s", flush=True)
            batch_rounds.append((ingest, raw))
            _errors(report, f"batched ingest, round {n + 1}", ingest)
        batch_rounds.sort(key=lambda r: r[0].rate / r[1].rate)
        ingest, raw = batch_rounds[len(batch_rounds) // 2]
        report.add(
            f"batched ingest over HTTP, 1000 events a request, {BATCH_CLIENTS} clients (events/s)",
            f"{ingest.rate:,.0f}/s",
            f"{raw.rate:,.0f}/s (asyncpg, 1000 rows a transaction)",
            f"{ingest.rate / raw.rate:.2f}x",
            ">= 50,000/s and >= 0.3x",
        )
        report.notes.append(
            f"Batched ingest ran in {BATCH_ROUNDS} rounds of {seconds:g} s, each after raw"
            " asyncpg's own round; the table gives the round with the median ratio. All rounds"
            " (ingest / raw = ratio): "
            + "; ".join(
                f"{i.rate:,.0f} / {r.rate:,.0f} = {i.rate / r.rate:.2f}x" for i, r in batch_rounds
            )
            + "."
        )
        if args.workers > 1:
            report.notes.append(
                f"Batched ingest: the {BATCH_CLIENTS} clients' connections were held"
                f" {', '.join(' / '.join(map(str, held)) for held in spread)} by the"
                f" {args.workers} workers in the rounds above. Each client"
                " opens its connection and has it answer a request before the next one"
                " connects, as clients that start one after another do; connections opened"
                " in one burst all go to the worker that wakes first, which accepts every"
                " connection waiting."
            )
        max_ingest = ingest.rate
    finally:
        service.stop()

    # 3. Live lag at half the maximum ingest rate, projections in the server.
    print("bench: live lag", flush=True)
    live = Service(url, schema(), workdir, projections=True, workers=args.workers)
    live.run("migrate")
    live.start()
    try:
        token = phases.writer_token(live)
        lag = await phases.live_lag(live.url, token, rate=max_ingest / 2, seconds=seconds)
        report.add(
            "live lag at half the max ingest rate (write answer -> visible in GET, p50 / p99)",
            f"{lag.p50_ms:.0f} / {lag.p99_ms:.0f} ms over {lag.operations:,} probes",
            f"{max_ingest / 2:,.0f} events/s offered",
            "-",
            "p99 <= 250 ms",
        )
    finally:
        live.stop()

    # 4. Many jobs loaded through the batch API with the projections off: a backlog.
    print(f"bench: loading {args.jobs:,} jobs", flush=True)
    loaded = Service(url, schema(), workdir, projections=False, workers=args.workers)
    loaded.run("migrate")
    loaded.start()
    try:
        token = phases.writer_token(loaded)
        last, took = await phases.load_jobs(loaded.url, token, args.jobs)
        loading_rss = loaded.rss_bytes()
    finally:
        loaded.stop()
    print(f"  loaded {args.jobs:,} jobs ({last:,} events) in {took:.0f} s", flush=True)
    report.notes.append(
        f"Loading {args.jobs:,} jobs ({last:,} events) through `POST /api/v1/events/batch`"
        f" took {took:.0f} s ({last / took:,.0f} events/s, 4 connections); the server's"
        f" peak RSS while loading was {loading_rss / 2**20:.0f} MB."
    )

    # 5. Projection catch-up and rebuild on that backlog.
    print("bench: projection catch-up", flush=True)
    backlog, catch_up = phases.catch_up(loaded)
    report.add(
        f"projection catch-up on a backlog of {backlog:,} events (events/s)",
        f"{backlog / catch_up:,.0f}/s ({catch_up:.1f} s)",
        f"{max_ingest:,.0f}/s (batched ingest above)",
        f"{backlog / catch_up / max_ingest:.2f}x",
        ">= 30,000/s",
    )
    print("bench: projection rebuild", flush=True)
    rebuilt = phases.rebuild(loaded)
    report.add(
        f"`ledger projections rebuild` of {backlog:,} events (events/s)",
        f"{backlog / rebuilt:,.0f}/s ({rebuilt:.1f} s)",
        f"{backlog / catch_up:,.0f}/s (catch-up above)",
        f"{catch_up / rebuilt:.2f}x",
        ">= 30,000/s, 1M events in < 60 s",
    )

    # 6. Reads with those jobs loaded, and the server's memory.
    print("bench: VACUUM (ANALYZE) and CHECKPOINT before the reads", flush=True)
    settled = phases.settle(loaded)
    report.notes.append(
        f"Before the reads, the schema's tables were vacuumed and analyzed and a checkpoint"
        f" taken ({settled:.0f} s), as pgbench does before a run, so that autovacuum of the"
        f" freshly loaded rows is not timed as read latency."
    )
    print("bench: reads", flush=True)
    # The load generator's own collector pauses would be timed as read latency, of the
    # in-process baseline and of HTTP alike (list p99 in-process: 22-24 -> 6 ms).
    gc.collect()
    gc.freeze()
    reads = Service(
        url, loaded.env["LEDGER_DATABASE_SCHEMA"], workdir, projections=True, workers=args.workers
    )
    reads.start()
    try:
        token = phases.writer_token(reads)
        held: list[list[int]] = []
        reads_of = await phases.read_latencies(reads, token, seconds, READ_ROUNDS, held)
        for name, runs in reads_of:
            # As for appends: the round with the median ratio stands for the read.
            ranked = sorted(runs, key=lambda r: r[0].p99_ms / max(r[1].p99_ms, 1e-9))
            run, base = ranked[len(ranked) // 2]
            report.add(
                f"{name} at {args.jobs:,} jobs, 16 readers (p50 / p99)",
                f"{run.p50_ms:.1f} / {run.p99_ms:.1f} ms",
                f"{base.p50_ms:.1f} / {base.p99_ms:.1f} ms (same query, asyncpg in-process)",
                f"{run.p99_ms / base.p99_ms:.1f}x" if base.p99_ms else "-",
                "p99 <= 10 ms, <= 2x",
            )
            for n, (http, _) in enumerate(runs):
                _errors(report, f"{name}, round {n + 1}", http)
        report.notes.append(
            f"Reads ran in {READ_ROUNDS} rounds of {seconds:g} s each over HTTP and then"
            " in-process; the table gives the round with the median ratio of p99s. All"
            " rounds (p99 over HTTP / in-process = ratio): "
            + "; ".join(
                f"{name.removeprefix('GET ')}: "
                + ", ".join(
                    f"{h.p99_ms:.1f} / {b.p99_ms:.1f} = {h.p99_ms / b.p99_ms:.1f}x" for h, b in runs
                )
                for name, runs in reads_of
            )
            + "."
        )
        if args.workers > 1:
            report.notes.append(
                "Reads: the 16 readers' connections were held "
                + ", ".join(" / ".join(map(str, h)) for h in held)
                + f" by the {args.workers} workers in the read rounds above, in their order (opened"
                " one after another, as for batched ingest). A worker holding more of them"
                " answers its share more slowly, and its readers make the p99."
            )
        rss = reads.rss_bytes()
        report.add(
            f"server peak RSS at {args.jobs:,} jobs (after the reads, projections running)",
            f"{rss / 2**20:.0f} MB",
            "-",
            "-",
            "<= 300 MB",
        )
    finally:
        reads.stop()


def _errors(report: Report, name: str, run: Run) -> None:
    if run.errors:
        report.notes.append(f"{name}: {run.errors} requests answered with an unexpected status")


if __name__ == "__main__":
    main()
