"""Leaderboard renderers: Markdown (GitHub), CSV (full precision), LaTeX (booktabs), HTML.

Every number comes from the :class:`~irbench.report.leaderboard.Leaderboard`, which holds the
run directories' own values; the text formats round them for display (4 decimals for
effectiveness), CSV keeps them exact.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable

from irbench.errors import ConfigError
from irbench.report.leaderboard import Leaderboard

FORMATS = ("md", "csv", "latex", "html")
SUFFIXES = {".md": "md", ".markdown": "md", ".csv": "csv", ".tex": "latex", ".html": "html",
            ".htm": "html"}  # fmt: skip
EFF_HEADERS = {
    "ms_per_query": "ms/q",
    "qps": "QPS",
    "index_mb": "Index MiB",
    "avg_doc_nnz": "Doc nnz",
    "flops": "FLOPS",
}
TEST_NAMES = {"ttest": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
UP, DOWN = "†", "‡"


def fmt_metric(v: float | None) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.4f}"


def fmt_eff(key: str, v: float | None) -> str:
    if v is None:
        return "–"
    if key == "qps":
        return f"{v:,.0f}"
    if key == "flops":
        return f"{v:.3f}"
    if key == "ms_per_query":
        return f"{v:.3f}" if v < 1 else f"{v:.2f}"
    return f"{v:.1f}"


def mean_header(lb: Leaderboard) -> list[str]:
    return ["Mean"] if lb.show_mean else []


def eff_columns(lb: Leaderboard) -> list[str]:
    return [k for k in EFF_HEADERS if any(k in row.efficiency for row in lb.rows)]


def _is_best(lb: Leaderboard, column: str, value: float | None) -> bool:
    best = lb.best(column)
    return value is not None and best is not None and len(lb.rows) > 1 and value == best


def footnote(lb: Leaderboard, up: str = UP, down: str = DOWN, alpha: str = "α") -> list[str]:
    """The table's footnote as sentences (plain text; renderers escape and mark up)."""
    lines = []
    if lb.baseline:
        lines.append(
            f"{up} / {down}: significantly higher / lower {lb.measure} than the baseline "
            f"'{lb.baseline}' on that dataset ({TEST_NAMES[lb.test]} over per-query values, a "
            f"query missing from a run counting as 0; Holm-Bonferroni correction across the "
            f"systems compared on each dataset; {alpha} = {lb.alpha:g})."
        )
    else:
        lines.append("No significance tests (no baseline given; use --baseline NAME).")
    lines.append(
        f"Cells: {lb.measure} from each run's metrics.json; best per column in bold"
        + ("; Mean over the datasets, for systems run on all of them." if lb.show_mean else ".")
    )
    effs = eff_columns(lb)
    if effs and lb.efficiency_dataset:
        threads = lb.threads()
        t = f" with {', '.join(map(str, threads))} thread(s)" if threads else ""
        parts = {
            "ms_per_query": f"ms/q, QPS: query latency and throughput recorded by the run{t}",
            "index_mb": "Index MiB: index size on disk",
            "avg_doc_nnz": "Doc nnz: average non-zero terms per document vector",
            "flops": "FLOPS: expected number of query-document term matches, the SPLADE "
            "papers' cost estimate",
        }
        if "qps" in effs:
            effs = ["ms_per_query", *effs]
        described = [v for k, v in parts.items() if k in effs]
        lines.append(
            f"Efficiency columns are measured on {lb.efficiency_dataset}. "
            + "; ".join(described)
            + "."
        )
    return lines


def _marker(sig: str, up: str, down: str) -> str:
    return up if sig == "+" else down if sig == "-" else ""


# --------------------------------------------------------------------------- markdown


def _md_escape(text: str) -> str:
    for ch in "\\|*_`<>[]":
        text = text.replace(ch, "\\" + ch)
    return text


def to_markdown(lb: Leaderboard, title: str | None = None) -> str:
    effs = eff_columns(lb)
    head = ["System", *lb.datasets, *mean_header(lb), *(EFF_HEADERS[k] for k in effs)]
    align = [":---", *["---:"] * (len(head) - 1)]
    out = []
    if title is not None:
        out += [f"# {title}", ""]
    out += ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for row in lb.rows:
        name = _md_escape(row.name) + (" (baseline)" if row.baseline else "")
        cells = [name]
        for ds in lb.datasets:
            cell = row.cells.get(ds)
            value = cell.value if cell else None
            text = fmt_metric(value)
            if _is_best(lb, ds, value):
                text = f"**{text}**"
            cells.append(text + (_marker(cell.sig, UP, DOWN) if cell else ""))
        if lb.show_mean:
            mean = fmt_metric(row.mean)
            cells.append(f"**{mean}**" if _is_best(lb, "mean", row.mean) else mean)
        for k in effs:
            v = row.efficiency.get(k)
            text = fmt_eff(k, v)
            cells.append(f"**{text}**" if _is_best(lb, k, v) else text)
        out.append("| " + " | ".join(cells) + " |")
    for line in footnote(lb):
        out += ["", _md_escape(line)]
    out.append("")
    out += _md_sources(lb)
    return "\n".join(out).rstrip() + "\n"


def _md_sources(lb: Leaderboard) -> list[str]:
    lines = ["<details><summary>Run directories</summary>", "",
             "| System | Dataset | Run directory | Commit |", "| :--- | :--- | :--- | :--- |"]  # fmt: skip
    for row in lb.rows:
        for ds, run in sorted(row.runs.items()):
            git = run.manifest.get("git") or {}
            commit = (git.get("commit") or "")[:10] + (" (dirty)" if git.get("dirty") else "")
            lines.append(f"| {_md_escape(row.name)} | {ds} | `{run.path}` | {commit or '–'} |")
    return [*lines, "", "</details>"]


# --------------------------------------------------------------------------- csv


def to_csv(lb: Leaderboard) -> str:
    """One row per system; exact values, the raw and Holm-adjusted p-value per dataset."""
    effs = eff_columns(lb)
    head = ["system", "baseline"]
    for ds in lb.datasets:
        head += [ds, f"{ds}_p", f"{ds}_p_holm", f"{ds}_sig"]
    head += ["mean", *effs]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)

    def num(v: float | None) -> str:
        return "" if v is None or math.isnan(v) else repr(float(v))

    for row in lb.rows:
        line = [row.name, "1" if row.baseline else "0"]
        for ds in lb.datasets:
            cell = row.cells.get(ds)
            if cell is None:
                line += ["", "", "", ""]
            else:
                line += [num(cell.value), num(cell.p), num(cell.p_holm), cell.sig]
        line += [num(row.mean), *(num(row.efficiency.get(k)) for k in effs)]
        w.writerow(line)
    return buf.getvalue()


# --------------------------------------------------------------------------- latex

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "–": "--", "—": "---", "α": r"$\alpha$", "†": r"\dag{}", "‡": r"\ddag{}"}  # fmt: skip


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)


def to_latex(lb: Leaderboard, caption: str | None = None, label: str = "tab:leaderboard") -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    effs = eff_columns(lb)
    nd = len(lb.datasets) + len(mean_header(lb))
    spec = "l" + "r" * nd + ("r" * len(effs))
    up, down = r"\textsuperscript{\dag}", r"\textsuperscript{\ddag}"
    caption = caption or f"{lb.measure} per dataset" + (
        f" (significance vs {lb.baseline})" if lb.baseline else ""
    )
    out = [
        "% irbench leaderboard; needs \\usepackage{booktabs} in the preamble",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{tex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
    ]
    group = [rf"\multicolumn{{{nd}}}{{c}}{{{tex_escape(lb.measure)}}}"]
    rules = [rf"\cmidrule(lr){{2-{nd + 1}}}"]
    if effs:
        where = tex_escape(f"Efficiency ({lb.efficiency_dataset})")
        group.append(rf"\multicolumn{{{len(effs)}}}{{c}}{{{where}}}")
        rules.append(rf"\cmidrule(lr){{{nd + 2}-{nd + 1 + len(effs)}}}")
    out.append(" & " + " & ".join(group) + r" \\")
    out.append(" ".join(rules))
    head = ["System", *lb.datasets, *mean_header(lb), *(EFF_HEADERS[k] for k in effs)]
    out.append(" & ".join(tex_escape(h) for h in head) + r" \\")
    out.append(r"\midrule")
    for row in lb.rows:
        cells = [tex_escape(row.name) + (r" (baseline)" if row.baseline else "")]
        for ds in lb.datasets:
            cell = row.cells.get(ds)
            value = cell.value if cell else None
            text = tex_escape(fmt_metric(value))
            if _is_best(lb, ds, value):
                text = rf"\textbf{{{text}}}"
            cells.append(text + (_marker(cell.sig, up, down) if cell else ""))
        if lb.show_mean:
            mean = tex_escape(fmt_metric(row.mean))
            cells.append(rf"\textbf{{{mean}}}" if _is_best(lb, "mean", row.mean) else mean)
        for k in effs:
            v = row.efficiency.get(k)
            text = tex_escape(fmt_eff(k, v))
            cells.append(rf"\textbf{{{text}}}" if _is_best(lb, k, v) else text)
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    notes = footnote(lb)
    out.append(
        r"\par\smallskip\parbox{\linewidth}{\footnotesize "
        + " ".join(tex_escape(n) for n in notes)
        + "}"
    )
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def latex_document(table: str) -> str:
    """A minimal standalone document around :func:`to_latex` (for checking it compiles)."""
    return (
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        "\\usepackage[margin=1.5cm,landscape]{geometry}\n"
        "\\begin{document}\n" + table + "\\end{document}\n"
    )


# --------------------------------------------------------------------------- dispatch


def renderer(fmt: str) -> Callable[[Leaderboard], str]:
    from irbench.report.html import to_html

    table: dict[str, Callable[[Leaderboard], str]] = {
        "md": lambda lb: to_markdown(lb, title=f"Leaderboard: {lb.measure}"),
        "csv": to_csv,
        "latex": to_latex,
        "html": to_html,
    }
    if fmt not in table:
        raise ConfigError(f"unknown format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    return table[fmt]


def format_for(path: str, fmt: str | None) -> str:
    """``fmt`` when given, else the format its suffix names (``.md .csv .tex .html``)."""
    if fmt:
        return fmt
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(
            f"cannot tell the format of '{path}' from its suffix; use --format "
            f"{'|'.join(FORMATS)} or a name ending in {', '.join(SUFFIXES)}"
        )
    return SUFFIXES[suffix]


def render(lb: Leaderboard, fmt: str) -> str:
    return renderer(fmt)(lb)


__all__ = ["FORMATS", "footnote", "format_for", "render", "to_csv", "to_latex",
           "to_markdown"]  # fmt: skip
