"""Make the official statistics table shipped in ``mapping/data/`` from the shared research copy.

    .venv/bin/python scripts/make_official_statistics.py [SHARED_CSV] [--allow-changes]

SHARED_CSV defaults to ``../shared/data/stats/tnls_cultivated_land_by_province.csv`` (or
``$CROPLAYER_SHARED_DATA/stats/...``). The shipped copy is what ``import_statistics --default``
and the demo read; the product never reads ``../shared`` at run time.

Checks before writing, and writes nothing when one fails: the columns; every figure a number;
every status one of STATUSES; every province row with a source and evidence; no working notes
left in the Source or Evidence text (NOTE_MARKERS: how the figure was searched for, "carried
over", "recalled"...). The table's figures and statuses are the survey's: a run that would
change any of them stops and lists them, unless ``--allow-changes`` says the change is meant.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "mapping" / "data" / "tnls_cultivated_land_by_province.csv"
SHARED = (
    Path(os.environ.get("CROPLAYER_SHARED_DATA", ROOT.parent / "shared" / "data"))
    / "stats"
    / "tnls_cultivated_land_by_province.csv"
)
COLUMNS = [
    "province_zh",
    "province_en",
    "cultivated_land_10k_ha",
    "cultivated_land_10k_mu",
    "status",
    "source",
    "evidence",
]
# mapping.models.StatisticStatus's values (a test keeps the two equal; the script needs no Django).
STATUSES = {"VERIFIED", "VERIFIED_ROUNDED", "WEAKLY_VERIFIED", "UNVERIFIED", "OTHER_SOURCE"}
# Phrases of a researcher's working notes that must not reach the product's Source column.
NOTE_MARKERS = (
    "carried over",
    "not re-read",
    "prior note",
    "look-ups",
    "lookups",
    "search corpora",
    "find_string",
    "recalled",
    "this pass",
    "todo",
)
FIGURES = ("cultivated_land_10k_ha", "cultivated_land_10k_mu", "status")


class TableError(Exception):
    """A table that cannot be shipped; the message says which row and why."""


def read_table(text: str) -> list[dict[str, str]]:
    """The rows of a statistics CSV, checked; raises TableError naming the line."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != COLUMNS:
        raise TableError(f"columns are {reader.fieldnames}, expected {COLUMNS}")
    rows = []
    for line, row in enumerate(reader, start=2):
        where = f"line {line} ({row['province_en']})"
        for col in ("cultivated_land_10k_ha", "cultivated_land_10k_mu"):
            try:
                if Decimal(row[col]) <= 0:
                    raise TableError(f"{where}: {col} {row[col]!r} is not positive")
            except InvalidOperation as e:
                raise TableError(f"{where}: {col} {row[col]!r} is not a number") from e
        if row["status"] not in STATUSES:
            raise TableError(f"{where}: status {row['status']!r} is not one of {sorted(STATUSES)}")
        for col in ("source", "evidence"):
            if not row[col].strip():
                raise TableError(f"{where}: no {col}")
            low = row[col].lower()
            found = [m for m in NOTE_MARKERS if m in low]
            if found:
                raise TableError(f"{where}: {col} holds working notes ({', '.join(found)})")
        rows.append(row)
    return rows


def figure_changes(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[str]:
    """Provinces whose figures or status differ, or that appear in only one table."""
    before = {r["province_zh"]: r for r in old}
    after = {r["province_zh"]: r for r in new}
    out = [f"{p}: only in the shipped table" for p in before if p not in after]
    out += [f"{p}: new" for p in after if p not in before]
    for p in after.keys() & before.keys():
        a, b = before[p], after[p]
        for col in FIGURES:
            same = a[col] == b[col] if col == "status" else Decimal(a[col]) == Decimal(b[col])
            if not same:
                out.append(f"{p}: {col} {a[col]} -> {b[col]}")
    return sorted(out)


def write_table(rows: list[dict[str, str]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_suffix(".csv.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=SHARED)
    parser.add_argument("--allow-changes", action="store_true")
    parser.add_argument("--out", type=Path, default=SHIPPED)
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"{args.source}: no such file", file=sys.stderr)
        return 2
    try:
        rows = read_table(args.source.read_text(encoding="utf-8"))
        old = (
            list(csv.DictReader(io.StringIO(args.out.read_text(encoding="utf-8"))))
            if args.out.is_file()
            else []
        )
    except TableError as e:
        print(f"{args.source}: {e}; nothing written", file=sys.stderr)
        return 1
    changes = figure_changes(old, rows) if old else []
    if changes and not args.allow_changes:
        print("figures or statuses would change (pass --allow-changes if meant):", file=sys.stderr)
        for c in changes:
            print(f"  {c}", file=sys.stderr)
        return 1
    write_table(rows, args.out)
    print(f"{len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
