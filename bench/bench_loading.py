"""Benchmark: load a generated recipients CSV end to end and report rows/s and peak memory.

    .venv/bin/python bench/bench_loading.py [--rows 1000000] [--slice 250000] [--keep DIR]
                                            [--zones | --identities] [--runs N]

The file mixes the phone formats seen in real files (E.164, national with and without
separators, ``00`` prefixes, ``(0)`` trunk prefixes, Excel's ``1.2E10`` and ``.0``, other
countries) with about 2% invalid identities, and has two parameter columns, one with empty
cells covered by a default. Timed: ``open_recipients(...)`` plus every ``slices()`` slice.
``--zones`` also works out each row's time zone, as a campaign with quiet hours does: the file
is loaded without, then with time zones (``--runs`` times, in turns), each load in a process of
its own, and the ratio of the two times is printed (the target is 2 at most).
``--identities`` likewise loads the file as a one-identity campaign (WhatsApp on ``phone``),
then with a second identity (``[identities] SMS = "mobile"``: another column of phone numbers,
in the same mixed formats, empty in a third of the rows; the target is 1.5 at most).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from campaign import loading
from campaign.models import Channel

# Area codes that phonenumbers accepts (555 is not one: +1 555 numbers are invalid).
_US_AREAS = ("201", "202", "212", "213", "305", "312", "415", "617", "702", "713", "818", "917")
_INVALID = (
    "555-CALL-NOW",
    "12345",
    "+1 555 123 4567",
    "not a number",
    "+999 1234 5678",
    "0000000",
    "📞",
    "+44 20 7946",
    "+1 201 555 01234567",
)


def _us(rng: random.Random) -> str:
    area = rng.choice(_US_AREAS)
    a, b = rng.randrange(200, 1000), rng.randrange(10_000)
    return rng.choice(
        (
            f"+1 {area}-{a}-{b:04d}",
            f"({area}) {a}-{b:04d}",
            f"{area}.{a}.{b:04d}",
            f"+1{area}{a}{b:04d}",
            f"1{area}{a}{b:04d}",
            f" {area}{a}{b:04d} ",
            f"1.{area}{a}{b:04d}E10",
            f"1{area}{a}{b:04d}.0",
        )
    )


def _elsewhere(rng: random.Random) -> str:
    return rng.choice(
        (
            f"+44 7400 {rng.randrange(10**6):06d}",
            f"0044 20 7946 {rng.randrange(10**4):04d}",
            f"+44 (0)20 7946 {rng.randrange(10**4):04d}",
            f"+49 30 {rng.randrange(10**8):08d}",
            f"+33 6 {rng.randrange(10**8):08d}",
            f"+52 55 {rng.randrange(10**8):08d}",
        )
    )


def _identity(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.02:
        return rng.choice(_INVALID) if rng.random() < 0.5 else str(rng.randrange(10**13))
    return _elsewhere(rng) if draw < 0.12 else _us(rng)


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write a ``phone,first_name,code`` CSV of ``rows`` rows to ``path``."""
    rng = random.Random(seed)
    names = ["Ana", "Bob", "Chloé", "Dmitri", 'Eve "E"', "", "Fatima", "Gao, Jun"]
    pl.DataFrame(
        {
            "phone": [_identity(rng) for _ in range(rows)],
            "first_name": [rng.choice(names) for _ in range(rows)],
            "code": [f"{rng.randrange(10**6):06d}" for _ in range(rows)],
            "mobile": [_identity(rng) if rng.random() < 2 / 3 else "" for _ in range(rows)],
        }
    ).write_csv(path)


def load(path: Path, rows_per_slice: int, zones: bool = False, several: bool = False) -> float:
    """Time loading ``path``, print the figures and return the seconds; peak RSS is this
    process's."""
    spec = loading.LoadSpec(
        path=path,
        channel=Channel.WHATSAPP,
        identities=((Channel.SMS, "mobile"),) if several else (),
        identity_column="phone",
        default_country="US",
        parameters=("first_name", "code"),
        defaults={"first_name": "there"},
        zones=zones,
    )
    started = time.perf_counter()
    rows = valid = 0
    for frame in loading.open_recipients(spec).slices(rows_per_slice):
        rows += frame.height
        valid += frame["reason"].null_count()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"loaded {rows:,} rows ({valid:,} valid) in {seconds:.2f} s: {rows / seconds:,.0f} rows/s"
    )
    print(
        f"peak RSS {peak_mb:,.0f} MB (slices of {rows_per_slice:,} rows"
        + (", with time zones" if zones else "")
        + (", two identities)" if several else ")")
    )
    return seconds


def compare(timed: Callable[..., float], flag: str, name: str, runs: int, target: float) -> None:
    """Load plain, then with ``flag``, ``runs`` times in turns (so that both see the same
    machine), and print each ratio and the ratio of the medians."""
    plain, other = [], []
    for _ in range(max(runs, 1)):
        plain.append(timed())
        other.append(timed(flag))
    for i, (a, b) in enumerate(zip(plain, other, strict=True), 1):
        if len(plain) > 1:
            print(f"run {i}: plain {a:.2f} s, {name} {b:.2f} s: ratio {b / a:.2f}")
    a, b = statistics.median(plain), statistics.median(other)
    print(
        f"{name} / plain load: {b:.2f} s / {a:.2f} s = ratio {b / a:.2f}"
        + (f" (medians of {len(plain)} runs)" if len(plain) > 1 else "")
        + f" (target <= {target:g})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--slice", type=int, default=250_000)
    parser.add_argument("--keep", type=Path, help="write the CSV in this directory and keep it")
    parser.add_argument("--load", type=Path, help="only load this file (no generation)")
    parser.add_argument("--zones", action="store_true", help="each row's time zone too")
    parser.add_argument(
        "--identities", action="store_true", help="one identity, then two, in turns"
    )
    parser.add_argument("--several", action="store_true", help=argparse.SUPPRESS)  # the child
    parser.add_argument("--runs", type=int, default=1, help="pairs of loads to compare")
    parser.add_argument("--seconds-to", type=Path, help=argparse.SUPPRESS)  # for the parent
    args = parser.parse_args(argv)
    if args.load:
        seconds = load(args.load, args.slice, args.zones, args.several)
        if args.seconds_to:
            args.seconds_to.write_text(f"{seconds!r}\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = (args.keep or Path(tmp)) / "recipients.csv"
        started = time.perf_counter()
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(
            f"generated {args.rows:,} rows ({size_mb:,.1f} MB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        # Loaded in a fresh process, so that its peak memory is the loader's alone.
        command = [sys.executable, __file__, "--load", str(path), "--slice", str(args.slice)]
        seconds_file = Path(tmp) / "seconds"

        def timed(*extra: str) -> float:
            subprocess.run([*command, *extra, "--seconds-to", str(seconds_file)], check=True)
            return float(seconds_file.read_text())

        if args.zones:
            compare(timed, "--zones", "with time zones", args.runs, target=2.0)
        elif args.identities:
            compare(timed, "--several", "two identities", args.runs, target=1.5)
        else:
            timed()
    print("reproduce: .venv/bin/python bench/bench_loading.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
