"""TREC run files, empty queries, qrels for unknown docs, vocabulary mismatches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from irbench.cli.app import app
from irbench.errors import CacheError, DataError
from irbench.pipeline import check_vocabulary
from irbench.runs.trec import read_run, write_run

runner = CliRunner()


@pytest.mark.parametrize(
    "line, needle",
    [
        ("q1 Q0 d1 1 2.5", "expected 6 columns"),
        ("q1 Q0 d1 1 high tag", "is not a number"),
        ("q1 Q0 d1 1 nan tag", "not finite"),
        ("q1 Q0 d1 1 -inf tag", "not finite"),
        ("q1 Q0 d1 1 1e400 tag", "not finite"),
        ("q1 Q0 d0 2 1.0 tag", "duplicate (query q1, doc d0)"),
    ],
)
def test_bad_run_lines_name_file_and_line(tmp_path, line, needle):
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d0 1 3.0 tag\n" + line + "\n")
    with pytest.raises(DataError) as info:
        read_run(path)
    assert f"{path}:2" in str(info.value) and needle in str(info.value)


def test_non_utf8_run_and_missing_run(tmp_path):
    path = tmp_path / "run.trec"
    path.write_bytes(b"q1 Q0 d0 1 3.0 tag\nq1 Q0 d\xff 2 1.0 tag\n")
    with pytest.raises(DataError, match=r"run.trec:2: not valid UTF-8"):
        read_run(path)
    with pytest.raises(DataError, match="not found"):
        read_run(tmp_path / "nope.trec")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_run_reader(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "run.trec"
    path.write_bytes(data)
    try:
        run = read_run(path)
    except DataError:
        return
    assert all(isinstance(s, float) for hits in run.values() for s in hits.values())


def test_a_bom_before_the_first_line_is_not_part_of_the_query_id(tmp_path):
    path = tmp_path / "run.trec"
    path.write_bytes(b"\xef\xbb\xbfq1 Q0 d1 1 1.0 r\nq1 Q0 d2 2 0.5 r\n")
    assert read_run(path) == {"q1": {"d1": 1.0, "d2": 0.5}}


def test_trec_order_is_the_order_pytrec_eval_evaluates():
    """The ranks irbench writes are the ranking its metrics score: with many exact ties, the
    first relevant rank in trec_order equals pytrec_eval's reciprocal rank, query by query."""
    import pytrec_eval

    from irbench.runs.trec import trec_order

    rng = np.random.default_rng(5)
    run, qrels = {}, {}
    for q in range(200):
        docs = [f"d{i}" for i in rng.choice(1000, 30, replace=False)]
        run[f"q{q}"] = {d: float(rng.integers(0, 4)) for d in docs}  # many ties
        qrels[f"q{q}"] = {str(rng.choice(docs)): 1}
    want = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    for q, hits in run.items():
        order = [d for d, _ in trec_order(hits.items())]
        first = next(i for i, d in enumerate(order, start=1) if d in qrels[q])
        assert want[q]["recip_rank"] == 1 / first


def test_every_measure_ranks_ties_alike():
    """ir_measures computes RR@k and Judged@k with providers that break ties by doc id
    ascending, pytrec_eval (nDCG, P, AP, RR) descending: irbench hands them one ranking, so
    on tied runs RR@1 equals P@1 (one relevant doc per query) and RR@10 equals pytrec_eval's
    reciprocal rank cut at 10."""
    import pytrec_eval

    from irbench.eval import evaluate
    from irbench.types import Qrel

    rng = np.random.default_rng(8)
    run, qrels = {}, {}
    for q in range(150):
        docs = [f"d{i}" for i in rng.choice(500, 20, replace=False)]
        run[f"q{q}"] = {d: float(rng.integers(0, 3)) for d in docs}
        qrels[f"q{q}"] = {str(rng.choice(docs)): 1}
    result = evaluate(run, [Qrel(q, d, g) for q, r in qrels.items() for d, g in r.items()],
                      ["RR@1", "P@1", "RR@10", "Judged@1"])  # fmt: skip
    per = {}
    for qid, measure, value in result.per_query:
        per.setdefault(measure, {})[qid] = value
    assert per["RR@1"] == per["P@1"] == per["Judged@1"]
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    for q, v in rr.items():
        assert per["RR@10"][q] == (v["recip_rank"] if v["recip_rank"] >= 0.1 else 0.0)


def test_write_run_refuses_non_finite_scores(tmp_path):
    with pytest.raises(DataError, match="not finite"):
        write_run(tmp_path / "r.trec", [("q1", [("d1", float("nan"))])], "t")
    assert not (tmp_path / "r.trec").exists()


def test_write_run_round_trip_and_bad_tag(tmp_path):
    hits = [("q1", [("d2", 3.25), ("d1", 1.0)]), ("q2", [])]
    write_run(tmp_path / "r.trec", hits, "tag")
    assert (tmp_path / "r.trec").read_text() == ("q1 Q0 d2 1 3.25 tag\nq1 Q0 d1 2 1 tag\n")
    assert read_run(tmp_path / "r.trec") == {"q1": {"d2": 3.25, "d1": 1.0}}
    with pytest.raises(DataError, match="tag"):
        write_run(tmp_path / "bad.trec", hits, "two words")
    assert not (tmp_path / "bad.trec").exists()


def test_empty_queries_and_unknown_qrels_docs_are_reported(beir_dir, workdir):
    lines = (beir_dir / "queries.jsonl").read_text().splitlines()
    lines[0] = json.dumps({"_id": "q0", "text": ""})
    lines[1] = json.dumps({"_id": "q1", "text": "the of and"})  # only stop words
    (beir_dir / "queries.jsonl").write_text("\n".join(lines) + "\n")
    with open(beir_dir / "qrels/test.tsv", "a") as f:
        f.write("q5\tghost-doc\t1\n")
        f.write("ghost-query\td3\t1\n")  # a query queries.jsonl lacks
    args = ["run", "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "k=10"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 of 41 queries with qrels have no hits" in result.output
    assert "1 queries in the qrels are not among the dataset's queries (e.g. 'ghost-query')" in (
        " ".join(result.output.split())
    )
    manifest = json.loads((workdir / "runs/tiny/bm25.numba/manifest.json").read_text())
    assert manifest["stages"]["retrieve"]["queries_without_hits"] == 2
    check = manifest["stages"]["eval"]["qrels_check"]
    assert check["qrels_unknown_doc_rows"] == 1 and check["qrels_unknown_query_rows"] == 1


def test_vocabulary_mismatch_is_an_error():
    class Enc:
        vocab_size = 30522

    class Idx:
        n_terms = 28865

    with pytest.raises(CacheError, match="30522 terms but the index has 28865"):
        check_vocabulary(Enc(), Idx())
    Idx.n_terms = 30522
    check_vocabulary(Enc(), Idx())


def test_written_scores_read_back_as_the_same_float32_values(tmp_path):
    """A run file ranks the hits as irbench did: scores that differ in float32 stay
    different (6 decimals tied 0.9000004 and 0.9000001, and evaluation reordered them)."""
    from irbench.eval import evaluate
    from irbench.runs.trec import read_run, write_run
    from irbench.types import Qrel

    rng = np.random.default_rng(0)
    scale = rng.choice([1e-3, 1, 30, 1e4], 2000)
    scores = np.sort((rng.random(2000) * scale).astype(np.float32))
    ranked = [(f"d{i}", float(s)) for i, s in enumerate(scores[::-1])]
    write_run(tmp_path / "r.trec", [("q", ranked)], "t")
    back = read_run(tmp_path / "r.trec")["q"]
    assert [np.float32(back[d]) for d, _ in ranked] == [np.float32(s) for _, s in ranked]
    fused = [0.032266458495966696, 0.0322664584959667]  # float64 RRF sums: exact too
    write_run(tmp_path / "f.trec", [("q", [("a", fused[0]), ("b", fused[1])])], "x")
    assert list(read_run(tmp_path / "f.trec")["q"].values()) == fused
    write_run(tmp_path / "t.trec", [("q", [("a", 0.9000004), ("b", 0.9000001)])], "x")
    rr = evaluate(read_run(tmp_path / "t.trec"), [Qrel("q", "a", 1)], ["RR"]).aggregate["RR"]
    assert rr == 1.0
