"""Leaderboard, figures and compare, on small run directories generated in tmp_path."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from irbench.cli.app import app
from irbench.errors import ConfigError, DataError
from irbench.eval import evaluate
from irbench.pipeline import write_metrics
from irbench.report.leaderboard import build
from irbench.report.render import render, to_latex
from irbench.runs.trec import write_run
from irbench.types import Qrel

runner = CliRunner()
MEASURES = ["nDCG@10", "RR@10", "R@100"]


def toy_qrels(dataset: str, n_queries: int = 30) -> list[Qrel]:
    rng = random.Random(dataset)
    return [
        Qrel(f"q{q}", f"d{rng.randrange(80)}", rng.choice([1, 2]))
        for q in range(n_queries)
        for _ in range(2)
    ]


def make_run_dir(
    folder: Path,
    dataset: str,
    encoder: str = "bm25",
    config: dict | None = None,
    index: str = "numba",
    quality: float = 1.0,
    seed: int = 0,
    stats: dict | None = None,
    drop: int = 0,
    tag: str | None = None,
    extra: dict | None = None,
) -> Path:
    """A run directory as `irbench run` writes it: run.trec, metrics.json, perquery.tsv,
    stats.json, config.yaml and a manifest with the outputs' sha256. ``quality`` lifts the
    relevant documents' scores; ``drop`` leaves the first queries out of the run."""
    config = dict(config or {})
    qrels = toy_qrels(dataset)
    relevant = {(q.query_id, q.doc_id) for q in qrels}
    rng = random.Random(f"{dataset}/{encoder}/{seed}/{quality}")
    qids = sorted({q.query_id for q in qrels}, key=lambda q: int(q[1:]))[drop:]
    run = {}
    for qid in qids:
        scores = {f"d{d}": rng.random() for d in range(80)}
        for doc in scores:
            if (qid, doc) in relevant:
                scores[doc] += quality * rng.random()
        run[qid] = dict(sorted(scores.items(), key=lambda h: (-h[1], h[0]))[:50])
    folder.mkdir(parents=True)
    write_run(folder / "run.trec", [(q, list(h.items())) for q, h in run.items()], "t")
    from irbench.runs.trec import read_run

    result = evaluate(read_run(folder / "run.trec"), qrels, MEASURES)
    write_metrics(folder, result)
    if drop:  # as trec_eval without -c: queries without hits get no per-query values
        lines = (folder / "perquery.tsv").read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.split("\t")[0] not in {f"q{i}" for i in range(drop)}]
        (folder / "perquery.tsv").write_text("".join(kept))
    stats = stats if stats is not None else {"ms_per_query": 1.5, "qps": 666.7, "index_mb": 3.0,
                                             "avg_doc_nnz": 40.0, "flops": 1.2, "threads": 2,
                                             "n_docs": 80}  # fmt: skip
    (folder / "stats.json").write_text(json.dumps(stats))
    cfg = {
        "run_dir": str(folder),
        "k": 50,
        "tag": tag,
        "measures": MEASURES,
        "dataset": {"name": dataset},
        "encoder": {"_target_": "x.Y", "name": encoder, **config},
        "index": {"_target_": "x.Z", "_partial_": True, "name": index},
        **(extra or {}),
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    outputs = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("run.trec", "metrics.json", "perquery.tsv", "stats.json")
    }
    manifest = {
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "dataset": {
            "name": dataset,
            "fingerprint": {"docs": f"{dataset}-docs", "qrels": f"{dataset}-qrels"},
        },
        "encoder": {"name": encoder, "config": {"encoder": encoder, **config}},
        "index": {"name": index},
        "stats": stats,
        "outputs": outputs,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


DATASETS = ("alpha", "beta")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Three systems on two datasets (bm25 k1 0.9 / 1.2, splade), one query missing from splade."""
    root = tmp_path / "runs"
    for ds in DATASETS:
        make_run_dir(root / ds / "bm25.numba", ds, config={"k1": 0.9, "b": 0.4}, quality=0.8)
        make_run_dir(root / ds / "bm25-k1.2.numba", ds, config={"k1": 1.2, "b": 0.4},
                     quality=0.9, seed=1)  # fmt: skip
        make_run_dir(root / ds / "splade.numba", ds, encoder="splade",
                     config={"backbone": "/models/splade-tiny"}, quality=3.0, seed=2, drop=1,
                     stats={"ms_per_query": 9.0, "qps": 111.1, "index_mb": 12.5,
                            "avg_doc_nnz": 120.0, "flops": 3.4, "threads": 2, "n_docs": 80})  # fmt: skip
    return root


def metrics(path: Path) -> dict[str, float]:
    return json.loads((path / "metrics.json").read_text())


def perquery(path: Path, measure: str) -> dict[str, float]:
    rows = (line.split("\t") for line in (path / "perquery.tsv").read_text().splitlines()[1:])
    return {q: float(v) for q, m, v in rows if m == measure}


def test_rows_are_named_systems_and_cells_equal_metrics_json(runs):
    lb = build([runs], measure="nDCG@10", baseline="bm25.numba")
    names = {row.name for row in lb.rows}
    assert names == {"bm25 (k1=0.9)", "bm25 (k1=1.2)", "splade"}
    assert lb.datasets == list(DATASETS)
    for row in lb.rows:
        for ds, run in row.runs.items():
            assert row.cells[ds].value == metrics(run.path)["nDCG@10"]
        assert row.mean == pytest.approx(sum(row.cells[d].value for d in DATASETS) / 2, abs=0)
    assert [r.name for r in lb.rows if r.baseline] == ["bm25 (k1=0.9)"]
    # rows sorted by mean, best first
    means = [r.mean for r in lb.rows]
    assert means == sorted(means, reverse=True)


def test_csv_holds_exact_values_and_markdown_the_rounded_ones(runs):
    lb = build([runs], measure="RR@10", baseline="bm25 (k1=0.9)")
    table = list(csv.DictReader(io.StringIO(render(lb, "csv"))))
    by_name = {r["system"]: r for r in table}
    md = render(lb, "md")
    for row in lb.rows:
        for ds, run in row.runs.items():
            value = metrics(run.path)["RR@10"]
            assert float(by_name[row.name][ds]) == value
            assert f"{value:.4f}" in md
    # the markdown table rows: one per system, as many cells as the header
    lines = [line for line in md.splitlines() if line.startswith("|")]
    header = lines[0].split("|")
    body = lines[2 : 2 + len(lb.rows)]
    assert all(len(line.split("|")) == len(header) for line in body)
    assert "ms/q" in lines[0] and "FLOPS" in lines[0]


def wilcoxon_rounded(x, y):
    """scipy's signed-rank test on the differences rounded to 12 decimals (irbench's rule:
    float residues such as 2/3 - 1/2 vs 1/2 - 1/3 must not split ties or count as non-zero)."""
    return stats.wilcoxon(np.round(np.subtract(x, y), 12))


def test_pvalues_equal_scipy_and_holm_equals_statsmodels(runs):
    for test, fn in (("ttest", stats.ttest_rel), ("wilcoxon", wilcoxon_rounded)):
        lb = build([runs], measure="nDCG@10", baseline="bm25.numba", test=test)
        for ds in DATASETS:
            base = runs / ds / "bm25.numba"
            others = [r for r in lb.rows if not r.baseline]
            raw = []
            for row in others:
                a, b = perquery(row.runs[ds].path, "nDCG@10"), perquery(base, "nDCG@10")
                qids = sorted(set(a) | set(b))
                p = fn([a.get(q, 0.0) for q in qids], [b.get(q, 0.0) for q in qids]).pvalue
                assert row.cells[ds].p == pytest.approx(p, rel=1e-12)
                raw.append(p)
            adjusted = multipletests(raw, method="holm")[1]
            for row, adj in zip(others, adjusted, strict=True):
                assert row.cells[ds].p_holm == pytest.approx(adj, rel=1e-12)
                assert bool(row.cells[ds].sig) == (adj < 0.05)
    # splade (quality 3.0) beats the baseline clearly on both datasets
    lb = build([runs], baseline="bm25.numba")
    splade = next(r for r in lb.rows if r.name == "splade")
    assert all(splade.cells[ds].sig == "+" for ds in DATASETS)
    assert "†" in render(lb, "md") and "Holm" in render(lb, "md")


def test_a_query_missing_from_a_system_counts_as_zero(runs):
    lb = build([runs], baseline="bm25.numba")
    splade = next(r for r in lb.rows if r.name == "splade")
    a = perquery(runs / "alpha" / "splade.numba", "nDCG@10")
    b = perquery(runs / "alpha" / "bm25.numba", "nDCG@10")
    assert "q0" not in a and "q0" in b
    qids = sorted(set(b))
    p = stats.ttest_rel([a.get(q, 0.0) for q in qids], [b[q] for q in qids]).pvalue
    assert splade.cells["alpha"].p == pytest.approx(p, rel=1e-12)


def test_tampered_run_is_refused_naming_the_folder(runs):
    target = runs / "beta" / "bm25-k1.2.numba"
    text = (target / "run.trec").read_text()
    (target / "run.trec").write_text(text + "q0 Q0 d999 51 0.0 t\n")
    with pytest.raises(DataError, match=re.escape(str(target)) + ".*run.trec"):
        build([runs])
    result = runner.invoke(app, ["leaderboard", str(runs)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(target) in lines[0] and "sha256" in lines[0]


def test_baseline_errors_list_the_systems(runs):
    with pytest.raises(ConfigError, match="matches no system.*splade"):
        build([runs], baseline="dense")
    with pytest.raises(ConfigError, match="ambiguous"):
        build([runs], baseline="bm25")  # prefix of two systems
    assert build([runs], baseline="spl").baseline == "splade"


def test_tag_and_index_in_names(tmp_path):
    make_run_dir(tmp_path / "a", "alpha", tag="my-system")
    make_run_dir(tmp_path / "b", "alpha", encoder="dense", index="faiss")
    make_run_dir(tmp_path / "c", "alpha", encoder="dense", index="hnsw")
    names = {row.name for row in build([tmp_path]).rows}
    assert names == {"my-system", "dense.faiss", "dense.hnsw"}


def test_runs_fused_by_irbench_run_are_named_after_their_inputs(tmp_path):
    second = {"encoder": {"name": "dense", "backbone": "/m/minilm"}, "index": {"name": "faiss"}}
    for alpha in (0.3, 0.7):
        fusion = {"method": "interpolate", "alpha": alpha, "norm": "minmax", "rrf_k": 60,
                  "second": second}  # fmt: skip
        make_run_dir(tmp_path / f"i{alpha}", "alpha", extra={"fusion": fusion})
    fusion = {"method": "rrf", "alpha": 0.5, "norm": "minmax", "rrf_k": 60, "second": second}
    make_run_dir(tmp_path / "rrf", "alpha", extra={"fusion": fusion})
    make_run_dir(tmp_path / "plain", "alpha", extra={"fusion": None})
    names = {row.name for row in build([tmp_path]).rows}
    assert names == {
        "interpolate(bm25+dense) (alpha=0.3)",
        "interpolate(bm25+dense) (alpha=0.7)",
        "rrf(bm25+dense)",
        "bm25",
    }


def test_latex_is_a_booktabs_table_that_compiles(runs, tmp_path):
    lb = build([runs], baseline="bm25.numba")
    tex = to_latex(lb)
    assert tex.count(r"\begin{table}") == 1 and r"\end{table}" in tex
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert tex.count("{") == tex.count("}")
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1)
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == len(lb.rows)
    for line in body:
        assert line.endswith(r"\\") and line.count("&") == len(spec) - 1
    assert r"\textsuperscript{\dag}" in tex and "_" not in tex.replace(r"\_", "")
    if shutil.which("pdflatex") is None:
        return  # structure checked above; TeX is not installed here
    from irbench.report.render import latex_document

    (tmp_path / "t.tex").write_text(latex_document(tex))
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]


def test_html_is_self_contained(runs):
    html = render(build([runs], baseline="bm25.numba"), "html")
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", html)
    assert "http://" not in html and "https://" not in html and "@import" not in html
    assert html.count("data:image/png;base64,") == 2
    assert 'id="leaderboard"' in html and "addEventListener('click'" in html


def test_efficiency_columns_and_figures(runs):
    from irbench.report.figures import figures, pareto_front

    lb = build([runs], efficiency_dataset="beta")
    splade = next(r for r in lb.rows if r.name == "splade")
    assert splade.efficiency["ms_per_query"] == 9.0 and splade.efficiency["index_mb"] == 12.5
    pngs = figures(lb)
    assert set(pngs) == {"latency.png", "index_size.png"}
    assert all(p.startswith(b"\x89PNG") and len(p) > 5000 for p in pngs.values())
    # lower x and higher y win: (1, .5) and (3, .9) on the front, (2, .4) and (4, .8) dominated
    assert pareto_front([(1, 0.5), (2, 0.4), (3, 0.9), (4, 0.8)]) == [0, 2]
    with pytest.raises(ConfigError, match="no runs"):
        build([runs], efficiency_dataset="gamma")


def test_cli_writes_every_format_from_the_suffixes(runs, tmp_path):
    out = tmp_path / "out"
    args = ["leaderboard", str(runs), "--baseline", "bm25.numba", "-M", "nDCG@10",
            "--figures", str(out / "fig")]  # fmt: skip
    for name in ("lb.md", "lb.csv", "lb.tex", "lb.html"):
        args += ["-o", str(out / name)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "lb.tex").read_text().lstrip().startswith("%")
    assert (out / "lb.csv").read_text().startswith("system,baseline,alpha,")
    assert (out / "fig" / "latency.png").is_file()
    result = runner.invoke(app, ["leaderboard", str(runs), "--format", "csv"])
    assert result.exit_code == 0 and result.output.startswith("system,")
    result = runner.invoke(app, ["leaderboard", str(runs), "-o", str(out / "x.txt")])
    assert result.exit_code == 2 and "suffix" in result.output
    two = ["leaderboard", str(runs), "-o", str(out / "new.md"), "-o", str(out / "y.txt")]
    result = runner.invoke(app, two)
    assert result.exit_code == 2 and not (out / "new.md").exists()  # nothing half-done


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_html_renders_in_headless_chromium_and_sorts(runs, tmp_path):
    page = tmp_path / "leaderboard.html"
    page.write_text(render(build([runs], baseline="bm25.numba"), "html"))
    shot = tmp_path / "shot.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000
    assert int.from_bytes(data[16:20], "big") == 1280  # PNG width

    # the sort script runs: #sort=0-asc orders rows by system name
    dom = _chromium("--dump-dom", page.as_uri() + "#sort=0-asc").stdout
    body = dom.split("<tbody>")[1].split("</tbody>")[0]
    names = re.findall(r"<tr[^>]*><td>([^<]+)", body)
    assert names == sorted(names) and len(names) == 3
    assert 'data-dir="asc"' in dom


# --------------------------------------------------------------------------- compare


def test_compare_matches_a_manual_computation(runs):
    from irbench.report.compare import compare_runs

    a_dir, b_dir = runs / "alpha" / "splade.numba", runs / "alpha" / "bm25.numba"
    c, notes = compare_runs(a_dir, b_dir, measure="nDCG@10", top=5)
    a, b = perquery(a_dir, "nDCG@10"), perquery(b_dir, "nDCG@10")
    qids = sorted(set(a) | set(b))
    d = [a.get(q, 0.0) - b.get(q, 0.0) for q in qids]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert c.n == n and c.mean_diff == pytest.approx(mean, abs=1e-12)
    assert (c.ci_low, c.ci_high) == pytest.approx((mean - half, mean + half), abs=1e-12)
    assert c.wins == sum(x > 1e-9 for x in d) and c.losses == sum(x < -1e-9 for x in d)
    assert c.wins + c.ties + c.losses == n
    assert c.p_ttest == pytest.approx(stats.ttest_rel([a.get(q, 0.0) for q in qids],
                                                      [b[q] for q in qids]).pvalue)  # fmt: skip
    assert c.p_wilcoxon == pytest.approx(stats.wilcoxon(d).pvalue)
    assert [abs(x[3]) for x in c.changes] == sorted((abs(x) for x in d if x), reverse=True)[:5]
    assert notes and "only in B" in notes[0]


def test_compare_cli_on_run_files_with_qrels(runs, tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text(
        "".join(f"{q.query_id} 0 {q.doc_id} {q.relevance}\n" for q in toy_qrels("alpha"))
    )
    a, b = runs / "alpha" / "splade.numba", runs / "alpha" / "bm25.numba"
    by_dir = runner.invoke(app, ["compare", str(a), str(b), "--format", "json"])
    by_file = runner.invoke(app, ["compare", str(a / "run.trec"), str(b / "run.trec"),
                                  "--qrels", str(qrels), "--format", "json"])  # fmt: skip
    assert by_dir.exit_code == 0 and by_file.exit_code == 0, by_file.output
    x = json.loads(by_dir.stdout)
    y = json.loads(by_file.stdout)
    assert x["mean_diff"] == pytest.approx(y["mean_diff"], abs=1e-6)
    assert (x["wins"], x["losses"]) == (y["wins"], y["losses"])
    text = runner.invoke(app, ["compare", str(a), str(b)])
    assert "95% CI" in text.output and "Wilcoxon" in text.output
    missing = runner.invoke(app, ["compare", str(a / "run.trec"), str(b / "run.trec")])
    assert missing.exit_code == 2 and "--qrels" in missing.output


def test_one_dataset_has_no_mean_column_and_unknown_measures_are_refused(runs):
    lb = build([runs], datasets=["beta"], baseline="bm25.numba")
    assert lb.datasets == ["beta"] and not lb.show_mean
    md = render(lb, "md")
    assert "Mean" not in md.splitlines()[2]
    tex = to_latex(lb)
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1)
    assert spec == "l" + "r" * (1 + 5)
    with pytest.raises(ConfigError, match="no run has P@5.*nDCG@10"):
        build([runs], measure="P@5")
    with pytest.raises(ConfigError, match="no runs for dataset"):
        build([runs], datasets=["gamma"])


def test_runs_judged_on_other_qrels_are_left_out_with_a_note(runs):
    """A run of `alpha` evaluated on other qrels (e.g. a cut qrels file) is not put in the
    same column as the others: its value and its per-query test would not compare."""
    odd = runs / "alpha" / "splade.numba"
    manifest = json.loads((odd / "manifest.json").read_text())
    manifest["dataset"]["fingerprint"]["qrels"] = "alpha-qrels-cut"
    (odd / "manifest.json").write_text(json.dumps(manifest))
    lb = build([runs], baseline="bm25.numba")
    splade = next(r for r in lb.rows if r.name == "splade")
    assert "alpha" not in splade.cells and "beta" in splade.cells
    assert any(str(odd) in n and "other qrels" in n for n in lb.notes)
    assert splade.mean is None  # not on every dataset any more


def test_the_baselines_qrels_win_over_a_majority_of_other_qrels(runs):
    for name in ("splade.numba", "bm25-k1.2.numba"):  # two systems outvote the baseline
        folder = runs / "alpha" / name
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["dataset"]["fingerprint"]["qrels"] = "alpha-qrels-cut"
        (folder / "manifest.json").write_text(json.dumps(manifest))
    lb = build([runs], baseline="bm25.numba")
    cells = {r.name: set(r.cells) for r in lb.rows}
    base = next(r for r in lb.rows if r.baseline)
    assert "alpha" in base.cells
    assert all("alpha" not in c for n, c in cells.items() if n != base.name)
    assert sum("other qrels than the baseline's" in n for n in lb.notes) == 2
    # without a baseline the two systems that agree win
    lb = build([runs])
    assert sum("alpha" in r.cells for r in lb.rows) == 2
