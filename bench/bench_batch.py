"""Batch mode end to end: `campaign run` over a CSV, against a zero-latency sandbox.

Reproduce:  .venv/bin/python bench/bench_batch.py                     (1M and 10M rows, ~6 min)
            .venv/bin/python bench/bench_batch.py --big-rows 0        (1M only)
            add --ordered for a file sorted by number (the load's best case), --cache-mb N for
            another SQLite page cache (the URL's ?cache_mb=N)

For each size, the real command (`campaign run campaign.toml`, SQLite) runs as a child
process; the sandbox (`campaign sandbox --latency-ms 0`, 800 requests/s) runs in its own. It
prints, per size:
- wall time from launching `campaign run` to its exit (interpreter start, load, validate, store,
  send every chunk, record every recipient QUEUED, summary);
- the run's peak RSS (its own, from wait4);
- that every row is QUEUED in the store (`campaign status --json`) and accepted by the sandbox;
then, for the first size, the time to write the report (`campaign report -o report.csv`), as a
command and in process (without the interpreter's start; in a child of its own as well, so that
this process stays small: a child's peak RSS starts from its parent's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import sandbox_process, sandbox_stats
from campaign import config, reporting
from campaign.store.repository import Store

AREAS = ["201", "202", "203", "205", "206", "207", "208", "209", "210", "212"]


def write_csv(path: Path, rows: int, ordered: bool = False) -> None:
    """``rows`` distinct valid US numbers (up to 10M) with two parameters, written by Polars,
    in random order (as a real list is), or ``ordered`` by number (every index insert is then
    an append, which flatters the load)."""
    index = pl.int_range(0, rows, eager=True)
    if not ordered:
        index = index.shuffle(seed=5)
    numbers = index.alias("i").to_frame()
    area = pl.col("i").floordiv(1_000_000).replace_strict(list(range(10)), AREAS)
    numbers.select(
        phone=pl.concat_str(
            [pl.lit("+1"), area, (pl.col("i") % 1_000_000 + 2_000_000).cast(pl.String)]
        ),
        first_name=pl.format("Name{}", pl.col("i")),
        code=pl.col("i").cast(pl.String).str.zfill(6),
    ).write_csv(path)


def campaign_files(
    workdir: Path, url: str, rows: int, cache_mb: int | None = None
) -> tuple[Path, Path]:
    query = f"?cache_mb={cache_mb}" if cache_mb else ""
    settings = workdir / "config.toml"
    settings.write_text(
        "[sinch]\n"
        f'auth_url = "{url}/oauth2/token"\n'
        f'conversation_url = "{url}"\n'
        f'batch_url = "{url}"\n'
        "sandbox = false\n"
        "[database]\n"
        f'url = "sqlite:///{workdir / "campaign.db"}{query}"\n'
        "[sending]\n"
        "requests_per_second = 800\n"
        "batch_size = 1000\n"
    )
    campaign = workdir / "campaign.toml"
    campaign.write_text(
        f'name = "bench-{rows}"\n'
        f'recipients = "{workdir / "recipients.csv"}"\n'
        'mode = "batch"\n'
        'channel = "SMS"\n'
        'identity_column = "phone"\n'
        'default_country = "US"\n'
        "[message]\n"
        'text_message = { text = "Hi ${first_name}, your code is ${code}" }\n'
    )
    return settings, campaign


def environment() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SINCH_")},
        "SINCH_PROJECT_ID": config.SANDBOX_PROJECT_ID,
        "SINCH_APP_ID": config.SANDBOX_APP_ID,
        "SINCH_KEY_ID": config.SANDBOX_KEY_ID,
        "SINCH_KEY_SECRET": config.SANDBOX_KEY_SECRET,
    }


def timed_command(*args: str) -> tuple[float, float, str]:
    """Run ``campaign ARGS``; (wall seconds, its own peak RSS in MB, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", *args],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"campaign {args[0]} exited {process.returncode}: {output[-500:]}")
    return seconds, usage.ru_maxrss / 1024, output


async def export_in_process(database: Path, name: str, out: Path) -> tuple[float, int]:
    store = await Store.open(f"sqlite:///{database}")
    try:
        campaign = await store.campaigns.find(name)
        assert campaign is not None
        started = time.perf_counter()
        rows = await reporting.export(store.export.pages(campaign.id), out)
        return time.perf_counter() - started, rows
    finally:
        await store.close()


def one_size(rows: int, report: bool, ordered: bool, cache_mb: int | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # In a child process: a child's peak RSS starts from its parent's at fork (Linux keeps
        # ru_maxrss across exec), so this process must not hold the generated frame.
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--write-csv",
                str(workdir / "recipients.csv"),
                str(rows),
                *(["ordered"] if ordered else []),
            ],
            check=True,
        )
        figures: dict[str, float] = {}
        with sandbox_process("--latency-ms", "0", "--jitter-ms", "0") as url:
            settings, campaign = campaign_files(workdir, url, rows, cache_mb)
            seconds, peak, _ = timed_command("run", "--config", str(settings), str(campaign))
            stats = sandbox_stats(url)
        figures.update(seconds=seconds, peak_mb=peak, requests=stats["batches"])
        figures["accepted"] = stats["accepted_messages"]
        _, _, status = timed_command("status", "--config", str(settings), f"bench-{rows}", "--json")
        figures["queued"] = json.loads(status)["counts"].get("QUEUED", 0)
        if report:
            out = workdir / "report.csv"
            figures["report_command"], _, _ = timed_command(
                "report", "--config", str(settings), f"bench-{rows}", "-o", str(out)
            )
            # In a child too: after a million rows in this process, its RSS would be the next
            # child's starting peak (see above), and the 10M run's peak would be this one's.
            export = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--export",
                    str(workdir / "campaign.db"),
                    f"bench-{rows}",
                    str(out),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            taken, written = export.stdout.split()
            figures["report_in_process"] = float(taken)
            assert int(written) == rows
        return figures


def main() -> None:
    if sys.argv[1:2] == ["--write-csv"]:
        write_csv(Path(sys.argv[2]), int(sys.argv[3]), ordered=sys.argv[4:5] == ["ordered"])
        return
    if sys.argv[1:2] == ["--export"]:
        seconds, written = asyncio.run(
            export_in_process(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        )
        print(seconds, written)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0: skip")
    parser.add_argument(
        "--ordered", action="store_true", help="numbers sorted in the file (default: shuffled)"
    )
    parser.add_argument("--cache-mb", type=int, help="SQLite page cache (default: the store's)")
    args = parser.parse_args()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    sizes = [args.rows] + ([args.big_rows] if args.big_rows else [])
    results = {
        rows: one_size(rows, rows == args.rows, args.ordered, args.cache_mb) for rows in sizes
    }
    order = "sorted by number" if args.ordered else "in random order"
    for rows, f in results.items():
        print(f"{rows:,} recipients ({order}), batch mode, SQLite, sandbox at 0 ms, 800 req/s")
        print(f"    campaign run        {f['seconds']:.1f} s wall ({rows / f['seconds']:,.0f}/s)")
        print(f"    peak RSS            {f['peak_mb']:.0f} MB")
        print(f"    batch requests      {f['requests']:,.0f}")
        print(f"    accepted (sandbox)  {f['accepted']:,.0f}")
        print(f"    QUEUED (store)      {f['queued']:,.0f}")
        if "report_command" in f:
            print(f"    report, command     {f['report_command']:.2f} s")
            print(f"    report, in process  {f['report_in_process']:.2f} s")
    if len(sizes) == 2:
        ratio = results[sizes[1]]["peak_mb"] / results[sizes[0]]["peak_mb"]
        print(f"peak RSS ratio {sizes[1]:,} / {sizes[0]:,}: {ratio:.2f}")


if __name__ == "__main__":
    main()
