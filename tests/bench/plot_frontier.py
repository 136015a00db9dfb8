#!/usr/bin/env python3
"""Size-accuracy plot of every model x method row in docs/compression.md.

Reads every Markdown table there whose header has the columns "model",
"ratio" and "drop (points)" (and "format" or "method"), and writes an SVG:
x = compression ratio (log scale), y = accuracy drop in points, one colour
per model, the issue-15 targets (>= 12x at <= 0.5 points, >= 16x at <= 1.0)
drawn as shaded corners.  Hovering a point shows its row.  Standard library
only, so it runs wherever the tests do.

Usage: tests/bench/plot_frontier.py [docs/compression.md] [docs/compression-frontier.svg]
"""
import math
import re
import sys
from xml.sax.saxutils import escape

W, H = 960, 600
LEFT, RIGHT, TOP, BOTTOM = 70, 250, 40, 60
X_MIN, X_MAX = 1.0, 32.0          # ratio, log scale
Y_MIN, Y_MAX = -2.5, 3.5          # drop in points; rows outside are clipped to the edge
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22"]
TARGETS = [(12.0, 0.5), (16.0, 1.0)]


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def read_rows(path):
    """(model, method, ratio, drop) of every row of every matching table.

    A table needs "model" and "drop (points)" columns, and a "ratio" or a
    "file bytes" column; without a ratio, it is the model's fp32 checkpoint
    bytes (its "fp32 (checkpoint)" row, anywhere in the file) over the
    row's file bytes.  The method is the "method" or "format" column, else
    the second column's header and value (e.g. the pruning fractions)."""
    tables, header = [], None
    for line in open(path, encoding="utf-8"):
        if not line.startswith("|"):
            header = None
            continue
        c = cells(line)
        if header is None:
            header = [h.lower() for h in c]
            tables.append((header, []))
            continue
        if all(re.fullmatch(r":?-+:?", x) for x in c if x):
            continue
        tables[-1][1].append(c)
    fp32 = {}
    for header, body in tables:
        if "model" in header and "file bytes" in header:
            m, fb = header.index("model"), header.index("file bytes")
            for c in body:
                if any("fp32 (checkpoint)" in x for x in c) and c[fb].isdigit():
                    fp32[c[m]] = int(c[fb])
    rows = []
    for header, body in tables:
        if not {"model", "drop (points)"} <= set(header) or not ({"ratio", "file bytes"} & set(header)):
            continue
        col = {h: i for i, h in enumerate(header)}
        method_col = col.get("method", col.get("format"))
        for c in body:
            try:
                model = c[col["model"]]
                drop = float(c[col["drop (points)"]].replace("*", "").replace("\u2212", "-"))
                if "ratio" in col:
                    ratio = float(c[col["ratio"]])
                else:
                    ratio = fp32[model] / int(c[col["file bytes"]])
            except (ValueError, IndexError, KeyError, ZeroDivisionError):
                continue  # the fp32 rows have no drop; unknown checkpoint size
            method = c[method_col] if method_col is not None else f"{header[1]} {c[1]}"
            rows.append((model, method.replace("*", ""), ratio, drop))
    return rows


def sx(ratio):
    f = (math.log(ratio) - math.log(X_MIN)) / (math.log(X_MAX) - math.log(X_MIN))
    return LEFT + f * (W - LEFT - RIGHT)


def sy(drop):
    d = min(max(drop, Y_MIN), Y_MAX)
    return TOP + (Y_MAX - d) / (Y_MAX - Y_MIN) * (H - TOP - BOTTOM)


def svg(rows):
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    # target corners: right of the ratio, below the drop
    for ratio, drop in TARGETS:
        x, y = sx(ratio), sy(drop)
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{W - RIGHT - x:.1f}" '
                   f'height="{H - BOTTOM - y:.1f}" fill="#2ca02c" fill-opacity="0.08" '
                   f'stroke="#2ca02c" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 4:.1f}" y="{y + 14:.1f}" fill="#2ca02c">'
                   f'target: &#8805; {ratio:g}&#215; at &#8804; {drop:g} points</text>')
    # axes and grid
    for ratio in (1, 2, 4, 8, 12, 16, 32):
        x = sx(ratio)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{ratio}&#215;</text>')
    for drop in range(math.ceil(Y_MIN), math.floor(Y_MAX) + 1):
        y = sy(drop)
        color = "#888" if drop == 0 else "#ddd"
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="{color}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{drop}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 18}" text-anchor="middle">'
               'compression ratio (fp32 checkpoint bytes / .bct bytes, log scale)</text>')
    out.append(f'<text transform="translate(18 {(TOP + H - BOTTOM) / 2:.0f}) rotate(-90)" '
               'text-anchor="middle">accuracy drop (GLUE dev points; lower is better)</text>')
    out.append(f'<text x="{LEFT}" y="24" font-size="14">Size against accuracy: every model '
               'and method of docs/compression.md</text>')
    models = []
    for m, _, _, _ in rows:
        if m not in models:
            models.append(m)
    for i, model in enumerate(models):
        color = PALETTE[i % len(PALETTE)]
        for m, method, ratio, drop in rows:
            if m != model:
                continue
            clipped = not (Y_MIN <= drop <= Y_MAX)
            shape = "rect" if clipped else "circle"
            x, y = sx(min(max(ratio, X_MIN), X_MAX)), sy(drop)
            tip = escape(f"{model}: {method}: {ratio:.2f}x, drop {drop:+.2f}")
            if shape == "circle":
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}" '
                           f'fill-opacity="0.8"><title>{tip}</title></circle>')
            else:
                out.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                           f'fill="{color}"><title>{tip} (off the scale)</title></rect>')
        ly = TOP + 10 + 20 * i
        out.append(f'<circle cx="{W - RIGHT + 20}" cy="{ly}" r="5" fill="{color}"/>')
        out.append(f'<text x="{W - RIGHT + 30}" y="{ly + 4}">{escape(model)}</text>')
    ly = TOP + 10 + 20 * len(models) + 10
    out.append(f'<text x="{W - RIGHT + 14}" y="{ly}" fill="#555">square: drop off the scale</text>')
    out.append(f'<text x="{W - RIGHT + 14}" y="{ly + 16}" fill="#555">{len(rows)} rows; hover for each</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "docs/compression.md"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/compression-frontier.svg"
    rows = read_rows(src)
    if not rows:
        sys.exit(f"{src}: no table with model, ratio and drop (points) columns")
    with open(dst, "w", encoding="utf-8") as f:
        f.write(svg(rows))
    print(f"{dst}: {len(rows)} rows of {len({r[0] for r in rows})} models")


if __name__ == "__main__":
    main()
