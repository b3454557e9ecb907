#!/usr/bin/env python3
"""Draws docs/benchmarks.svg, and prints the Markdown tables of
docs/benchmarks.md, from the output of the executors bench.

Usage (Python 3.8+, standard library only):

    UNIRUN_BENCH_SAMPLES=10 cargo bench --bench executors --all-features > run1.txt
    ... (as many runs as you like: each is one sample of every ratio)
    python3 scripts/bench_chart.py run1.txt run2.txt run3.txt -o docs/benchmarks.svg

The bench prints, per run, a summary of `unirun / best peer` ratios
measured in that same run, and the ratios of the adapter scopes to their
own runtime. This script reads those two sections only: ratios are
comparable across runs, absolute times are not. For each row it takes the
median of the runs and their range.
"""

import argparse
import re
import statistics
import sys
from math import log

SUMMARY_LINE = re.compile(r"^\s+(\S+)\s+(.+?)\s+([\d.]+)\s+([\d.]+)x\s+(.*\S)\s*$")
SUMMARY_ROW = re.compile(r"^(.+?) ([\d.]+)x \(min ([\d.]+)x\)$")
ADAPTER_LINE = re.compile(r"^\s+(\S+)\s+(Run on \S+)\s+(.*\S)\s*$")
# One "ratio vs peer" of an adapter line (a line may list several, comma-separated).
ADAPTER_RATIO = re.compile(r"^([\d.]+)x vs (.+)$")


def parse(path):
    """Returns ({(scenario, row): ratio}, {scenario: best peer}, {(scenario, row): ratio})."""
    peers, rows, adapters = {}, {}, {}
    section = None
    with open(path, encoding="utf-8") as text:
        for line in text:
            if line.startswith("summary:"):
                section = "summary"
                continue
            if line.startswith("adapters:"):
                section = "adapters"
                continue
            if not line.startswith(" "):
                section = None if line.strip() else section
                continue
            if section == "summary" and not line.lstrip().startswith("scenario "):
                found = SUMMARY_LINE.match(line)
                if not found:
                    continue
                scenario, peer, _, _, listing = found.groups()
                peers[scenario] = peer
                for part in listing.split(", "):
                    row = SUMMARY_ROW.match(part.strip())
                    if row:
                        rows[(scenario, row.group(1))] = float(row.group(2))
            elif section == "adapters":
                found = ADAPTER_LINE.match(line)
                if found:
                    scenario, row, listing = found.groups()
                    for part in listing.split(","):
                        ratio = ADAPTER_RATIO.match(part.strip())
                        if ratio:
                            peer = ratio.group(2)
                            adapters[(scenario, f"{row} / {peer}")] = float(ratio.group(1))
    return rows, peers, adapters


def gather(paths):
    """Per (scenario, row): the list of ratios over the runs, in first-seen order."""
    rows, adapters, peers = {}, {}, {}
    for path in paths:
        run_rows, run_peers, run_adapters = parse(path)
        if not run_rows:
            sys.exit(f"{path}: no summary section (is it the output of the executors bench?)")
        for key, ratio in run_rows.items():
            rows.setdefault(key, []).append(ratio)
        for key, ratio in run_adapters.items():
            adapters.setdefault(key, []).append(ratio)
        for scenario, peer in run_peers.items():
            peers.setdefault(scenario, set()).add(peer)
    return rows, peers, adapters


def headline(rows):
    """The first unirun row of each scenario (the one users call most)."""
    chosen, seen = [], set()
    for scenario, row in rows:
        if scenario not in seen and "(ref)" not in row:
            seen.add(scenario)
            chosen.append((scenario, row))
    return chosen


def table(title, keys, values, peers=None):
    out = [f"| {title} | row | median | range |", "| --- | --- | ---: | ---: |"]
    for scenario, row in keys:
        ratios = values[(scenario, row)]
        peer = f" ({' / '.join(sorted(peers[scenario]))})" if peers else ""
        out.append(
            f"| {scenario}{peer} | {row} | {statistics.median(ratios):.2f}x "
            f"| {min(ratios):.2f}-{max(ratios):.2f} |"
        )
    return "\n".join(out)


# ---- the SVG: one horizontal bar per row, on a log scale around 1.0x ----

LO, HI = 0.05, 20.0
WIDTH, LABEL, RIGHT, BAR, GAP = 820, 330, 60, 14, 6


def x_of(ratio):
    ratio = min(max(ratio, LO), HI)
    span = WIDTH - LABEL - RIGHT
    return LABEL + span * (log(ratio) - log(LO)) / (log(HI) - log(LO))


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def panel(svg, top, title, keys, values):
    svg.append(f'<text x="10" y="{top + 14}" font-weight="bold">{escape(title)}</text>')
    y = top + 28
    for scenario, row in keys:
        ratios = values[(scenario, row)]
        mid = statistics.median(ratios)
        one, at = x_of(1.0), x_of(mid)
        colour = "#2f855a" if mid <= 1.0 else "#c05621"
        label = f"{scenario}: {row}"
        svg.append(
            f'<text x="{LABEL - 8}" y="{y + BAR - 3}" text-anchor="end">{escape(label)}</text>'
        )
        svg.append(
            f'<rect x="{min(one, at):.1f}" y="{y}" width="{max(abs(at - one), 1):.1f}" '
            f'height="{BAR}" fill="{colour}"/>'
        )
        if len(ratios) > 1:
            low, high = x_of(min(ratios)), x_of(max(ratios))
            mid_y = y + BAR / 2
            svg.append(
                f'<line x1="{low:.1f}" y1="{mid_y}" x2="{high:.1f}" y2="{mid_y}" stroke="#1a202c"/>'
            )
        svg.append(
            f'<text x="{max(one, at) + 4:.1f}" y="{y + BAR - 3}">{mid:.2f}x</text>'
        )
        y += BAR + GAP
    return y


def draw(rows, adapters, runs):
    lead = headline(rows)
    height = 90 + (len(lead) + len(adapters)) * (BAR + GAP) + 60
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="10" y="18" font-size="13">unirun / best peer in the same run, '
        f"median of {runs} run(s), range as a line; log scale, left of 1.0x is faster</text>",
    ]
    bars = []
    y = panel(bars, 28, "unirun's own pool against the best other executor", lead, rows)
    y = panel(bars, y + 10, "a unirun scope on tokio or smol against that runtime", list(adapters), adapters)
    # The grid goes under the bars.
    for tick in (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0):
        x = x_of(tick)
        dash = "" if tick == 1.0 else ' stroke-dasharray="2,3"'
        svg.append(f'<line x1="{x:.1f}" y1="40" x2="{x:.1f}" y2="{y}" stroke="#a0aec0"{dash}/>')
        svg.append(f'<text x="{x:.1f}" y="{y + 14}" text-anchor="middle">{tick:g}x</text>')
    svg.extend(bars)
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="saved output of `cargo bench --bench executors`")
    parser.add_argument("-o", "--output", default="docs/benchmarks.svg", help="SVG to write")
    args = parser.parse_args()
    rows, peers, adapters = gather(args.runs)
    with open(args.output, "w", encoding="utf-8") as out:
        out.write(draw(rows, adapters, len(args.runs)))
    print(table("scenario (best peer)", headline(rows), rows, peers))
    print()
    print(table("scenario", list(adapters), adapters))
    print(f"\nwrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
