#!/usr/bin/env python3
"""Markdown tables of a benchmark's raw results (TSV): one server against the best peer of each row.

Used by benches/peers.sh and benches/stream.sh (not meant to be run alone, but it can be, on any
raw results file they kept). The input has a header line naming its columns; it must have
`server` and `round`, the key columns (`--keys`, e.g. `size conns`) and every metric's column.
A key column missing from an older file takes its value from `--default KEY=VALUE`.

For each row (one value of the keys) the best peer is the peer (any server but `--subject`)
with the best median of a metric: the highest for a metric marked `high` (throughput), the
lowest for `low` (CPU cost). Ratios are taken round by round (each round's figure over the same
round's figure of that best peer: the rounds are interleaved, so each pair ran under the same
conditions), and shown as their median with their range in brackets. A ratio above 1 is better
for a `high` metric, below 1 for a `low` one.

Two tables, rows sorted by the keys (so grouped by the first, e.g. the message size):
  1. the subject against the best peer: per row, the subject's median, the best peer and its
     median, and the ratio, for each metric;
  2. every server: medians, the ratio to that row's best peer for each metric, and the `--info`
     columns (medians only).

A run whose `errors` column is not 0 is named after the row it belongs to.
"""

import argparse
import csv
import signal
import statistics
import sys


def human_size(v):
    n = int(float(v))
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def fmt_key(name, v):
    return human_size(v) if name == "size" else v


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def ratio_text(ratios):
    if not ratios:
        return "-"
    m = statistics.median(ratios)
    if len(ratios) == 1:
        return f"{m:.2f}"
    return f"{m:.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def parse_metric(spec):
    column, direction, label, fmt = (spec.split(":", 3) + ["", "", ""])[:4]
    if direction not in ("high", "low"):
        sys.exit(f"best-peer.py: --metric {spec}: direction must be high or low")
    return {"column": column, "high": direction == "high", "label": label or column, "fmt": fmt or ".2f"}


def parse_info(spec):
    column, label, fmt = (spec.split(":", 2) + ["", ""])[:3]
    return {"column": column, "label": label or column, "fmt": fmt or ".2f"}


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--subject", default="ringport")
    ap.add_argument("--keys", default="size conns", help="key columns, space separated")
    ap.add_argument("--metric", action="append", default=[], help="COLUMN:high|low:LABEL:FORMAT")
    ap.add_argument("--info", action="append", default=[], help="COLUMN:LABEL:FORMAT")
    ap.add_argument("--default", action="append", default=[], help="KEY=VALUE for old files")
    a = ap.parse_args()
    keys = a.keys.split()
    metrics = [parse_metric(m) for m in a.metric]
    infos = [parse_info(i) for i in a.info]
    defaults = dict(d.split("=", 1) for d in a.default)

    with open(a.results, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        sys.exit(f"best-peer.py: {a.results} holds no results")
    for r in rows:
        for k in keys:
            if r.get(k) in (None, ""):
                if k not in defaults:
                    sys.exit(f"best-peer.py: {a.results} has no `{k}` column (give --default {k}=VALUE)")
                r[k] = defaults[k]

    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    peers = [s for s in servers if s != a.subject]
    groups = sorted({tuple(r[k] for k in keys) for r in rows}, key=lambda g: tuple(num(x) for x in g))

    # by[group][server] = {round: row}
    by = {}
    for r in rows:
        by.setdefault(tuple(r[k] for k in keys), {}).setdefault(r["server"], {})[r["round"]] = r

    def median_of(runs, column):
        return statistics.median(num(r[column]) for r in runs.values())

    def best_peer(group, m):
        cands = [(median_of(by[group][p], m["column"]), p) for p in peers if p in by[group]]
        cands = [c for c in cands if c[0] > 0]
        if not cands:
            return None
        return (max if m["high"] else min)(cands)[1]

    def ratios(group, server, best, column):
        mine, theirs = by[group].get(server, {}), by[group].get(best, {})
        out = []
        for rnd, r in mine.items():
            if rnd in theirs and num(theirs[rnd][column]) > 0 and num(r[column]) > 0:
                out.append(num(r[column]) / num(theirs[rnd][column]))
        return out

    def errors(group, server):
        bad = [f"round {rnd}: {r['errors']}" for rnd, r in sorted(by[group].get(server, {}).items())
               if r.get("errors", "0") not in ("0", "")]
        return "; ".join(bad)

    key_head = [("size" if k == "size" else k) for k in keys]
    notes = []

    if a.subject in servers and peers:
        head, align = key_head[:], ["---:"] * len(key_head)
        for m in metrics:
            head += [f"{a.subject} {m['label']}", f"best peer ({m['label']})", m["label"], "x best"]
            align += ["---:", "---", "---:", "---:"]
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(align) + "|")
        for g in groups:
            if a.subject not in by[g]:
                continue
            cells = [fmt_key(k, v) for k, v in zip(keys, g)]
            for m in metrics:
                b = best_peer(g, m)
                cells.append(format(median_of(by[g][a.subject], m["column"]), m["fmt"]))
                if b is None:
                    cells += ["-", "-", "-"]
                    continue
                cells += [b, format(median_of(by[g][b], m["column"]), m["fmt"]),
                          ratio_text(ratios(g, a.subject, b, m["column"]))]
            print("| " + " | ".join(cells) + " |")
        print()

    head = key_head + ["server"]
    for m in metrics:
        head += [m["label"], "x best peer"]
    head += [i["label"] for i in infos]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if h == "server" else "---:" for h in head) + "|")
    for g in groups:
        best = {m["column"]: best_peer(g, m) for m in metrics}
        for s in servers:
            if s not in by[g]:
                continue
            cells = [fmt_key(k, v) for k, v in zip(keys, g)] + [s]
            for m in metrics:
                b = best[m["column"]]
                cells.append(format(median_of(by[g][s], m["column"]), m["fmt"]))
                if b is None:
                    cells.append("-")
                elif s == b:
                    cells.append("best")
                else:
                    cells.append(ratio_text(ratios(g, s, b, m["column"])))
            cells += [format(median_of(by[g][s], i["column"]), i["fmt"]) for i in infos]
            print("| " + " | ".join(cells) + " |")
            e = errors(g, s)
            if e:
                notes.append(f"{s} at {', '.join(f'{k} {fmt_key(k, v)}' for k, v in zip(keys, g))}: errors ({e})")
    for n in notes:
        print(f"\n- {n}", end="")
    if notes:
        print()


if __name__ == "__main__":
    main()
