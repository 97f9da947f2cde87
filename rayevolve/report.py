"""``python -m rayevolve.report RUN_OR_SWEEP_DIR``: plots, an HTML report, a terminal summary.

The HTML file embeds its images (base64 PNG) and styles, so it opens in any browser
without a server and can be mailed as one file.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import sys
from pathlib import Path

import pandas as pd

from rayevolve import analysis


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4), dpi=110)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_best(data: analysis.RunData, out: Path, x: str) -> Path:
    """Best score so far against evaluations or seconds: per run, and per island for one run."""
    fig, ax = _figure()
    single = len(data.runs) == 1
    for run, curve in analysis.best_so_far(data).groupby("run"):
        ax.plot(curve[x], curve["best"], label="all islands" if single else run, linewidth=2)
    if single:
        for island, curve in analysis.best_so_far(data, per_island=True).groupby("island"):
            ax.plot(
                curve[x],
                curve["best"],
                label=f"island {island} (its own evaluations)",
                linewidth=1,
                alpha=0.7,
            )
    ax.set_xlabel("evaluations" if x == "evaluation" else "wall time (s)")
    ax.set_ylabel("best score")
    ax.set_title(f"Best score so far vs {'evaluations' if x == 'evaluation' else 'wall time'}")
    ax.legend(fontsize=7)
    return _save(fig, out / f"best_vs_{'evaluations' if x == 'evaluation' else 'time'}.png")


def plot_failures(data: analysis.RunData, out: Path) -> Path:
    table = analysis.failure_breakdown(data)
    fig, ax = _figure()
    ax.barh(table["status"], table["count"])
    ax.set_xlabel("candidates")
    ax.set_ylabel("status")
    ax.set_title("How candidates ended")
    return _save(fig, out / "failures.png")


def plot_diversity(data: analysis.RunData, out: Path) -> Path:
    table = analysis.island_diversity(data)
    fig, ax = _figure()
    for (run, island), part in table.groupby(["run", "island"]):
        label = f"island {int(island)}" if len(data.runs) == 1 else f"{run} / {int(island)}"
        ax.plot(part["evaluations"], part["cells_filled"], marker="o", markersize=3, label=label)
    ax.set_xlabel("evaluations (island)")
    ax.set_ylabel("MAP-Elites cells filled")
    ax.set_title("Island diversity")
    if len(table):
        ax.legend(fontsize=7)
    return _save(fig, out / "diversity.png")


def plot_sweep(table: pd.DataFrame, out: Path) -> Path:
    fig, ax = _figure()
    varying = [
        c
        for c in table.columns
        if c not in ("runs", "mean", "ci95") and table[c].nunique(dropna=False) > 1
    ]
    labels = [
        ", ".join(f"{k}={row[k]}" for k in varying) or "all" for row in table.to_dict("records")
    ]
    ax.bar(range(len(table)), table["mean"], yerr=table["ci95"].fillna(0), capsize=4)
    ax.set_xticks(range(len(table)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("setting")
    ax.set_ylabel("final best score (mean, 95% CI over seeds)")
    ax.set_title("Sweep comparison")
    return _save(fig, out / "sweep.png")


def _image(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}"></figure>'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.6g}", border=0, classes="t")


STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table.t{border-collapse:collapse;font-size:.85em}table.t td,table.t th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}
figure{margin:1em 0}img{max-width:100%}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em}"""


def build(path: str | Path, out: str | Path | None = None, threshold: float | None = None) -> Path:
    """Write the plots and report.html for a run or sweep directory; return the HTML path."""
    data = analysis.load(path)
    out = Path(out or Path(path) / "report")
    out.mkdir(parents=True, exist_ok=True)
    images = [
        plot_best(data, out, "evaluation"),
        plot_best(data, out, "seconds"),
        plot_failures(data, out),
        plot_diversity(data, out),
    ]
    sections = [
        f"<h1>rayevolve report: {html.escape(str(path))}</h1>",
        f"<p>{len(data.runs)} run(s), {len(data.programs)} logged candidates.</p>",
    ]
    table = analysis.sweep_table(data, threshold)
    sections += ["<h2>Runs</h2>", _table(table)]
    if len(data.runs) > 1:
        comparison = analysis.compare(table)
        images.append(plot_sweep(comparison, out))
        sections += ["<h2>Sweep comparison (95% CI over seeds)</h2>", _table(comparison)]
    sections += ["<h2>Plots</h2>", *(_image(p) for p in images)]
    sections += ["<h2>Failures</h2>", _table(analysis.failure_breakdown(data))]
    sections += ["<h2>Models and mutation operators</h2>", _table(analysis.operator_success(data))]
    flows = analysis.migration_flows(data)
    sections += [
        "<h2>Migration flows</h2>",
        _table(flows) if len(flows) else "<p>No migrations.</p>",
    ]
    best = analysis.best_program(data)
    chain = analysis.lineage(data, best["program_id"])
    sections.append(
        f"<h2>Lineage of the best program ({best['score']:.6g}, run {html.escape(str(best['run']))})</h2>"
    )
    for step in chain.to_dict("records"):
        sections.append(
            f"<h3>generation {step['generation']}, island {step['island']}, {html.escape(str(step['operator']))}: {step['score']:.6g}</h3>"
        )
        if step["diff"]:
            sections.append(f"<pre>{html.escape(step['diff'])}</pre>")
    page = f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rayevolve report</title><style>{STYLE}</style></head><body>{"".join(sections)}</body></html>'
    target = out / "report.html"
    target.write_text(page)
    return target


def terminal_summary(path: str | Path, threshold: float | None = None) -> str:
    data = analysis.load(path)
    buffer = io.StringIO()
    table = analysis.sweep_table(data, threshold)
    print(table.to_string(index=False), file=buffer)
    if len(data.runs) > 1:
        print("\n" + analysis.compare(table).to_string(index=False), file=buffer)
    print("\n" + analysis.failure_breakdown(data).to_string(index=False), file=buffer)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rayevolve.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("path", help="a run directory or a sweep directory")
    parser.add_argument("--out", help="where the plots and report.html go (default: PATH/report)")
    parser.add_argument(
        "--threshold", type=float, help="score whose first crossing is reported per run"
    )
    args = parser.parse_args(argv)
    try:
        report = build(args.path, args.out, args.threshold)
    except FileNotFoundError as exc:
        print(f"rayevolve report: {exc}", file=sys.stderr)
        return 1
    print(terminal_summary(args.path, args.threshold))
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
