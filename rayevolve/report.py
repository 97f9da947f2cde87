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

    return plt.subplots(figsize=(8, 4), dpi=110)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")  # the legend beside the axes included
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_best(data: analysis.RunData, out: Path, x: str) -> Path:
    """Best score so far against evaluations or seconds: per run (labelled by what differs
    between runs), and per island for one run (placed at the run's evaluation count)."""
    fig, ax = _figure()
    single = len(data.runs) == 1
    labels = analysis.run_labels(analysis.sweep_table(data))
    for run, curve in analysis.best_so_far(data).groupby("run"):
        label = "all islands" if single else labels.get(run, run)
        ax.plot(curve[x], curve["best"], label=label, linewidth=2)
    if single:
        for island, curve in analysis.best_so_far(data, per_island=True).groupby("island"):
            ax.plot(
                curve[x],
                curve["best"],
                label=f"island {island}",
                linewidth=1,
                alpha=0.7,
                drawstyle="steps-post",
            )
    ax.set_xlabel("evaluations" if x == "evaluation" else "wall time (s)")
    ax.set_ylabel("best score")
    ax.set_title(f"Best score so far vs {'evaluations' if x == 'evaluation' else 'wall time'}")
    _legend(ax)
    return _save(fig, out / f"best_vs_{'evaluations' if x == 'evaluation' else 'time'}.png")


def _legend(ax) -> None:
    """Beside the plot, never over the curves."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


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
    labels = analysis.run_labels(analysis.sweep_table(data))
    fig, ax = _figure()
    for (run, island), part in table.groupby(["run", "island"]):
        label = (
            f"island {int(island)}"
            if len(data.runs) == 1
            else f"{labels.get(run, run)} / island {int(island)}"
        )
        ax.plot(part["evaluations"], part["cells_filled"], marker="o", markersize=3, label=label)
    ax.set_xlabel("evaluations (island)")
    ax.set_ylabel("MAP-Elites cells filled")
    ax.set_title("Island diversity")
    _legend(ax)
    return _save(fig, out / "diversity.png")


def plot_sweep(table: pd.DataFrame, out: Path) -> Path:
    """Mean final best per setting with its 95% interval over seeds: points with error
    bars on an axis fitted to them (bars from 0 would make 2.40 and 2.45 look equal)."""
    fig, ax = _figure()
    settings = analysis.varying_settings(table)
    labels = [
        analysis.setting_label(row, settings, width=30) if settings else "all runs"
        for row in table.to_dict("records")
    ]
    ax.errorbar(
        range(len(table)),
        table["mean"],
        yerr=table["ci95"].fillna(0),
        fmt="o",
        capsize=5,
        markersize=6,
    )
    ax.set_xticks(range(len(table)), labels, rotation=20, ha="right", fontsize=7)
    ax.set_xlim(-0.5, len(table) - 0.5)
    ax.set_xlabel("setting")
    ax.set_ylabel("final best score (mean, 95% CI over seeds)")
    ax.set_title("Sweep comparison")
    return _save(fig, out / "sweep.png")


def _image(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}"></figure>'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.6g}", border=0, classes="t")


def _diff(diff: str) -> str:
    """A unified diff as HTML, added and removed lines coloured."""
    lines = [
        f'<span class="{kind}">{html.escape(line)}</span>'
        for kind, line in analysis.diff_lines(diff)
    ]
    return f'<pre class="diff">{"".join(lines) or "(no change)"}</pre>'  # lines are blocks


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:.95em}
table.t{border-collapse:collapse;font-size:.85em}table.t td,table.t th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
figure{margin:1em 0}img{max-width:100%}pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em}
pre.diff span{display:block}pre.diff .add{background:#e6ffec;color:#116329}pre.diff .del{background:#ffebe9;color:#82071e}
pre.diff .hunk{color:#0550ae}pre.diff .file{color:#555;font-weight:600}.mark{font-size:.8em;background:#fff3cd;padding:0 .4em;border-radius:3px}
.note{color:#555;font-size:.9em}"""


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
    constants = analysis.constant_settings(table.drop(columns=["seed"], errors="ignore"))
    shown = table[[c for c in table.columns if c not in constants]]
    sections += ["<h2>Runs</h2>", _table(shown)]
    if constants:
        same = ", ".join(f"{k}={html.escape(v)}" for k, v in constants.items())
        sections.append(f'<p class="note">Same in every run: {same}</p>')
    if len(data.runs) > 1:
        comparison = analysis.compare_varying(table)
        images.append(plot_sweep(comparison, out))
        comparison = comparison.assign(
            **{
                "mean ± 95%": [
                    f"{m:.6g} ± {c:.3g}" if c == c else f"{m:.6g}"
                    for m, c in zip(comparison["mean"], comparison["ci95"], strict=True)
                ]
            }
        )
        sections += [
            "<h2>Sweep: the settings that vary (mean and 95% interval over seeds)</h2>",
            _table(comparison),
        ]
    sections += ["<h2>Plots</h2>", *(_image(p) for p in images)]
    sections += ["<h2>Failures</h2>", _table(analysis.failure_breakdown(data))]
    messages = analysis.failure_messages(data)
    if len(messages):
        sections += ["<h3>Grouped by message</h3>", _table(messages)]
    sections += ["<h2>Models and mutation operators</h2>", _table(analysis.operator_success(data))]
    flows = analysis.migration_flows(data)
    if len(data.runs) == 1:
        flows = flows.drop(columns="run")
    sections += [
        "<h2>Migration flows</h2>",
        _table(flows) if len(flows) else "<p>No migrations.</p>",
    ]
    hosts = analysis.per_host(data)
    placed = analysis.placements(data)
    sections += ["<h2>Where the work ran</h2>"]
    sections += [_table(hosts)] if len(hosts) else ["<p>No evaluation recorded a host.</p>"]
    if len(placed):
        placed = placed.assign(node_id=placed["node_id"].fillna("").str[:12])
        if len(data.runs) > 1:  # a sweep: how many of each role ran where, over all runs
            placed = (
                placed.groupby(["role", "host", "ip", "node_id"], dropna=False)
                .size()
                .rename("actors")
                .reset_index()
            )
        else:
            placed = placed.drop(columns="run")
        sections += ["<h3>Actors at start</h3>", _table(placed)]
    sections += _lineage_sections(data)
    page = f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rayevolve report</title><style>{STYLE}</style></head><body>{"".join(sections)}</body></html>'
    target = out / "report.html"
    target.write_text(page)
    return target


def _lineage_sections(data: analysis.RunData) -> list[str]:
    """The best program, the whole change from the initial program to it, and each step
    of its lineage with its diff; migrations (an island hop) and crossovers marked."""
    best = analysis.best_program(data)
    if best is None:
        return ["<h2>Best program</h2><p>No program was scored.</p>"]
    chain = analysis.lineage(data, best["program_id"])
    sections = [
        f"<h2>Best program ({best['score']:.6g}, run {html.escape(str(best['run']))}, "
        f"island {best['island']}, generation {best['generation']})</h2>",
        f"<pre>{html.escape(str(best['code']))}</pre>",
        "<h2>From the initial program to the best</h2>",
        _diff(analysis.seed_to_best_diff(data, best["program_id"])),
        f"<h2>Lineage of the best program ({len(chain)} steps)</h2>",
    ]
    for step in chain.to_dict("records"):
        marks = []
        if step["hop"]:
            marks.append('<span class="mark">came by migration</span>')
        if step["second_parent"]:
            marks.append(
                f'<span class="mark">crossover with {html.escape(step["second_parent"][:8])}</span>'
            )
        sections.append(
            f"<h3>generation {step['generation']}, island {step['island']}, "
            f"{html.escape(str(step['operator']))}: {step['score']:.6g} {' '.join(marks)}</h3>"
        )
        if step["diff"]:
            sections.append(_diff(step["diff"]))
    return sections


def terminal_summary(path: str | Path, threshold: float | None = None) -> str:
    data = analysis.load(path)
    buffer = io.StringIO()
    table = analysis.sweep_table(data, threshold)
    print(table.to_string(index=False), file=buffer)
    if len(data.runs) > 1:
        print("\n" + analysis.compare_varying(table).to_string(index=False), file=buffer)
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
