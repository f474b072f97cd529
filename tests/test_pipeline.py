"""End to end through the CLI on a small generated collection (always runs)."""

from __future__ import annotations

import json
from pathlib import Path

import ir_measures
import pytest
from typer.testing import CliRunner

from irbench.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def local(beir: Path, *extra: str) -> list[str]:
    return ["dataset=local", "dataset.name=tiny", f"dataset.path={beir}", "k=50", *extra]


def read_trec(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def test_run_writes_a_complete_run_directory(beir_dir, workdir):
    result = invoke("run", *local(beir_dir))
    assert result.exit_code == 0, result.output
    run_dir = workdir / "runs" / "tiny" / "bm25.numba"
    for name in ("config.yaml", "manifest.json", "run.trec", "metrics.json", "perquery.tsv"):
        assert (run_dir / name).is_file(), name

    rows = read_trec(run_dir / "run.trec")
    assert rows and all(len(r) == 6 and r[1] == "Q0" and r[5] == "bm25.numba" for r in rows)
    by_query: dict[str, list[list[str]]] = {}
    for r in rows:
        by_query.setdefault(r[0], []).append(r)
    for hits in by_query.values():
        assert [int(h[3]) for h in hits] == list(range(1, len(hits) + 1))
        scores = [float(h[4]) for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert len(hits) <= 50

    # metrics.json equals an independent ir_measures evaluation of the written run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics) == ["nDCG@10", "RR@10", "R@100", "R@1000", "AP"]
    qrels = [
        ir_measures.Qrel(q, d, int(r))
        for q, d, r in (
            line.split("\t") for line in (beir_dir / "qrels/test.tsv").read_text().splitlines()[1:]
        )
    ]
    expected = ir_measures.calc_aggregate(
        [ir_measures.parse_measure(m) for m in metrics],
        qrels,
        ir_measures.read_trec_run(str(run_dir / "run.trec")),
    )
    for name, value in metrics.items():
        assert value == pytest.approx(expected[ir_measures.parse_measure(name)], abs=1e-9)
    assert metrics["nDCG@10"] > 0.3  # the generated queries are drawn from their relevant docs

    perquery = (run_dir / "perquery.tsv").read_text().splitlines()
    assert perquery[0] == "query_id\tmeasure\tvalue" and len(perquery) > 1

    manifest = json.loads((run_dir / "manifest.json").read_text())
    for key in (
        "irbench",
        "python",
        "packages",
        "host",
        "seed",
        "threads",
        "dataset",
        "stages",
        "outputs",
    ):
        assert key in manifest, key
    assert set(manifest["dataset"]["fingerprint"]) >= {"docs", "queries", "qrels"}
    for st in ("index", "retrieve", "eval"):
        assert manifest["stages"][st]["wall_s"] >= 0
        assert manifest["stages"][st]["peak_rss_mb"] > 0
    assert manifest["stages"]["index"]["cached"] is False
    assert manifest["index"]["n_docs"] == 300 and manifest["index"]["empty_docs"] >= 1
    config_text = (run_dir / "config.yaml").read_text()
    assert "dataset:" in config_text and "${" not in config_text


def test_second_run_is_byte_identical_and_reuses_the_cache(beir_dir, workdir):
    assert invoke("run", *local(beir_dir)).exit_code == 0
    run_dir = workdir / "runs" / "tiny" / "bm25.numba"
    first = (run_dir / "run.trec").read_bytes()
    result = invoke("run", *local(beir_dir))
    assert result.exit_code == 0 and "reused" in result.output
    assert (run_dir / "run.trec").read_bytes() == first
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["index"]["cached"] is True and manifest["index"]["reused"] is True


def test_changed_encoder_config_never_reuses_a_stale_index(beir_dir, workdir):
    assert invoke("run", *local(beir_dir)).exit_code == 0
    assert invoke("run", *local(beir_dir, "encoder.k1=1.5", "run_dir=runs/other")).exit_code == 0
    manifest = json.loads((workdir / "runs/other/manifest.json").read_text())
    assert manifest["index"]["reused"] is False
    assert len(list((workdir / "runs/.cache/index").glob("*.bm25.numba.*"))) >= 2


def test_thread_count_does_not_change_the_run(beir_dir, workdir):
    assert invoke("run", *local(beir_dir, "threads=1", "run_dir=runs/t1")).exit_code == 0
    assert invoke("run", *local(beir_dir, "threads=2", "run_dir=runs/t2")).exit_code == 0
    assert (workdir / "runs/t1/run.trec").read_bytes() == (
        workdir / "runs/t2/run.trec"
    ).read_bytes()


def test_separate_stages_match_run(beir_dir, workdir):
    result = invoke("retrieve", *local(beir_dir))
    assert result.exit_code == 2 and "run `irbench index`" in result.output
    assert invoke("index", *local(beir_dir, "run_dir=runs/staged")).exit_code == 0
    assert invoke("retrieve", *local(beir_dir, "run_dir=runs/staged")).exit_code == 0
    result = invoke("eval", *local(beir_dir, "run_dir=runs/staged"))
    assert result.exit_code == 0, result.output
    assert invoke("run", *local(beir_dir, "run_dir=runs/whole")).exit_code == 0
    staged, whole = workdir / "runs/staged", workdir / "runs/whole"
    assert (staged / "run.trec").read_bytes() == (whole / "run.trec").read_bytes()
    assert (staged / "metrics.json").read_text() == (whole / "metrics.json").read_text()
    manifest = json.loads((staged / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"index", "retrieve", "eval"}


def test_eval_any_run_file_with_qrels(beir_dir, workdir):
    assert invoke("run", *local(beir_dir)).exit_code == 0
    run_dir = workdir / "runs/tiny/bm25.numba"
    result = invoke(
        "eval", str(run_dir / "run.trec"), "--qrels", str(beir_dir / "qrels/test.tsv"),
        "-M", "nDCG@10", "--output", "evalout",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = json.loads((workdir / "evalout/metrics.json").read_text())
    want = json.loads((run_dir / "metrics.json").read_text())
    assert got == {"nDCG@10": want["nDCG@10"]}
    result = invoke(
        "eval",
        str(run_dir / "run.trec"),
        "--qrels",
        str(beir_dir / "qrels/test.tsv"),
        "-M",
        "nDCG@x",
    )
    assert result.exit_code == 2 and "unknown measure" in result.output


def test_beir_rule_drops_self_hits(tmp_path, workdir):
    folder = tmp_path / "self"
    folder.mkdir()
    docs = [("q1", "alpha beta gamma"), ("d1", "alpha beta"), ("d2", "gamma delta")]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in docs)
    )
    (folder / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "alpha beta gamma"}) + "\n"
    )
    (folder / "qrels").mkdir()
    (folder / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    base = ["dataset=local", "dataset.name=self", f"dataset.path={folder}", "k=2"]
    assert invoke("run", *base, "dataset.drop_self_hits=true", "run_dir=runs/drop").exit_code == 0
    assert invoke("run", *base, "dataset.drop_self_hits=false", "run_dir=runs/keep").exit_code == 0
    dropped = [r[2] for r in read_trec(workdir / "runs/drop/run.trec")]
    kept = [r[2] for r in read_trec(workdir / "runs/keep/run.trec")]
    assert kept[0] == "q1" and "q1" not in dropped and len(dropped) == 2


def test_malformed_corpus_line_is_one_line_error_and_writes_nothing(beir_dir, workdir):
    corpus = beir_dir / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[41] = '{"_id": "broken", "text": '
    corpus.write_text("\n".join(lines) + "\n")
    result = invoke("run", *local(beir_dir))
    assert result.exit_code == 2
    assert "corpus.jsonl:42" in result.output and "Traceback" not in result.output
    assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1
    assert not (workdir / "runs/tiny/bm25.numba/run.trec").exists()
    cache = workdir / "runs/.cache/index"
    assert not cache.exists() or not any(
        p.is_dir() and (p / "COMPLETE").exists() for p in cache.iterdir()
    )


def test_duplicate_doc_ids_are_rejected(beir_dir, workdir):
    corpus = beir_dir / "corpus.jsonl"
    corpus.write_text(
        corpus.read_text() + json.dumps({"_id": "d3", "title": "", "text": "again"}) + "\n"
    )
    result = invoke("run", *local(beir_dir))
    assert result.exit_code == 2 and "duplicate doc id 'd3'" in result.output


def test_missing_dataset_path_is_one_line_error(workdir):
    result = invoke("run", "dataset=local", "dataset.name=x", "dataset.path=/nonexistent/folder")
    assert result.exit_code == 2 and "/nonexistent/folder" in result.output
    assert "Traceback" not in result.output


def test_multirun_sweeps_through_hydra(beir_dir, workdir):
    result = invoke("run", "-m", *local(beir_dir), "k=5,20")
    assert result.exit_code == 0, result.output
    runs = sorted(p.parent.name for p in (workdir / "runs/tiny/bm25.numba").glob("*/run.trec"))
    assert runs == ["k=20", "k=5"]
    five = read_trec(workdir / "runs/tiny/bm25.numba/k=5/run.trec")
    assert max(int(r[3]) for r in five) == 5


def test_fusion_inside_run_fuses_two_complete_input_runs(beir_dir, workdir):
    result = invoke(
        "run", *local(beir_dir), "fusion=rrf", "encoder@fusion.second.encoder=bm25",
        "index@fusion.second.index=numba", "fusion.second.encoder.k1=2.0", "fusion.second.encoder.b=1.0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = workdir / "runs/tiny/rrf.bm25.numba+bm25.numba"
    inputs = [run_dir / "inputs/1-bm25.numba", run_dir / "inputs/2-bm25.numba"]
    for p in inputs:
        assert (p / "metrics.json").is_file() and (p / "manifest.json").is_file()

    # reciprocal rank fusion by hand: sum over inputs of 1 / (60 + rank), where a run's ranks
    # come from its scores with ties by doc id descending (trec_eval's order, irbench.fusion's)
    def trec_ranked(hits):  # [(score, docid)] -> docids, score desc, then docid desc
        by_doc = sorted(hits, key=lambda h: h[1], reverse=True)
        return [d for _, d in sorted(by_doc, key=lambda h: -h[0])]

    expected: dict[str, dict[str, float]] = {}
    for p in inputs:
        per_query: dict[str, list[tuple[float, str]]] = {}
        for qid, _, docid, _, score, _ in read_trec(p / "run.trec"):
            per_query.setdefault(qid, []).append((float(score), docid))
        for qid, hits in per_query.items():
            for rank, docid in enumerate(trec_ranked(hits), start=1):
                expected.setdefault(qid, {}).setdefault(docid, 0.0)
                expected[qid][docid] += 1.0 / (60 + rank)
    rows = read_trec(run_dir / "run.trec")
    assert rows[0][5] == "rrf.bm25.numba+bm25.numba"
    for qid, _, docid, _, score, _ in rows:
        assert float(score) == pytest.approx(expected[qid][docid], abs=1e-6)
    first = [r[2] for r in rows if r[0] == rows[0][0]]
    want = trec_ranked([(s, d) for d, s in expected[rows[0][0]].items()])
    assert want[: len(first)] == first
    # the fused run's cost is its inputs' together: latency and index size add up
    stats = json.loads((run_dir / "stats.json").read_text())
    parts = [json.loads((p / "stats.json").read_text()) for p in inputs]
    assert stats["ms_per_query"] == pytest.approx(sum(p["ms_per_query"] for p in parts), abs=1e-3)
    assert stats["index_mb"] == pytest.approx(sum(p["index_mb"] for p in parts), abs=1e-3)
    assert stats["qps"] == pytest.approx(1000 / stats["ms_per_query"], rel=1e-3)


def test_run_trec_lists_tied_hits_as_trec_eval_ranks_them(beir_dir, workdir):
    """Copies of one doc tie exactly; run.trec lists them by doc id descending (trec_eval's
    order, the one the metrics score), whatever their order in the corpus."""
    lines = (beir_dir / "corpus.jsonl").read_text().splitlines()
    text = json.loads(lines[3])
    for new_id in ("copy-a", "copy-c", "copy-b"):  # corpus order is not the tie order
        lines.append(json.dumps({**text, "_id": new_id}))
    (beir_dir / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    query = " ".join((text["title"] + " " + text["text"]).split()[:3])
    (beir_dir / "queries.jsonl").write_text(json.dumps({"_id": "q0", "text": query}) + "\n")
    (beir_dir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tcopy-a\t1\n")
    assert invoke("run", *local(beir_dir)).exit_code == 0
    rows = read_trec(workdir / "runs/tiny/bm25.numba/run.trec")
    copies = {"d3", "copy-a", "copy-b", "copy-c"}
    tied = [r[2] for r in rows if r[2] in copies]
    assert len({r[4] for r in rows if r[2] in copies}) == 1  # one score
    assert tied == sorted(copies, reverse=True)
    ranks = [int(r[3]) for r in rows if r[2] in copies]
    assert ranks == sorted(ranks) and ranks[-1] - ranks[0] == 3  # together, in that order
