"""User mistakes end in one line naming the file or key, exit code 2, and leave no stale or
half-written results (always runs, on the small generated collection)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from irbench.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def local(beir: Path, *extra: str) -> list[str]:
    return ["dataset=local", "dataset.name=tiny", f"dataset.path={beir}", "k=20", *extra]


def one_error_line(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("irbench: error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def copy_beir(beir_dir: Path, dest: Path) -> Path:
    shutil.copytree(beir_dir, dest)
    return dest


@pytest.mark.parametrize("measure", ["P@0", "nDCG@0", "RR@0"])
def test_a_cutoff_of_zero_is_refused_before_any_work(beir_dir, workdir, measure):
    # pytrec_eval aborts the process on it, after run.trec has been replaced
    result = invoke("run", *local(beir_dir, f"measures=[nDCG@10,{measure}]"))
    one_error_line(result, measure, "cutoff")
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize(
    "measure",
    ["nDCG@10.5", "P@1e3", "P(rel=2.5)@10", "R@100000000000000000000", "P(rel=0)@10",
     "P(rel=3000000000)@10", "nDCG(gains={0:0,1:1.5})@10", "nDCG(judged_only=1)@10"],
)  # fmt: skip
def test_a_measure_with_a_non_integer_or_huge_parameter_is_refused(beir_dir, workdir, measure):
    # AssertionError / KeyError tracebacks before, after run.trec had been written
    result = invoke("run", *local(beir_dir, f"measures=[nDCG@10,'{measure}']"))
    one_error_line(result, measure)
    assert not (workdir / "runs").exists()
    run = workdir / "r.trec"
    run.write_text("q1 Q0 d1 1 1.0 t\n")
    qrels = workdir / "q.txt"
    qrels.write_text("q1 0 d1 1\n")
    one_error_line(invoke("eval", str(run), "--qrels", str(qrels), "-M", measure), measure)


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_query_batch_size_must_be_a_positive_integer(beir_dir, workdir, value):
    one_error_line(invoke("run", *local(beir_dir, f"query_batch_size={value}")), "query_batch_size")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("k=true", "k must be"),
        ("dataset.drop_self_hits=maybe", "dataset.drop_self_hits"),
        ("encode.shard=3", "encode.shard"),  # with num_shards 1: caught even when cached
        ("encode.chunk_size=abc", "encode.chunk_size"),
    ],
)
def test_config_values_of_the_wrong_type_or_range(beir_dir, workdir, override, key):
    one_error_line(invoke("run", *local(beir_dir, override)), key)


def test_a_non_numeric_bm25_parameter_names_its_key(beir_dir, workdir):
    one_error_line(invoke("run", *local(beir_dir, "encoder.k1=abc")), "encoder.k1")


def test_empty_corpus_and_empty_queries_are_errors(beir_dir, workdir, tmp_path):
    no_docs = copy_beir(beir_dir, tmp_path / "no_docs")
    (no_docs / "corpus.jsonl").write_text("")
    one_error_line(invoke("run", *local(no_docs)), str(no_docs / "corpus.jsonl"), "no docs")
    no_queries = copy_beir(beir_dir, tmp_path / "no_queries")
    (no_queries / "queries.jsonl").write_text("")
    one_error_line(invoke("run", *local(no_queries)), "no queries")
    assert not list((workdir / "runs").glob("tiny/*/run.trec"))


def test_a_duplicate_doc_id_names_the_corpus_file(beir_dir, workdir, tmp_path):
    dup = copy_beir(beir_dir, tmp_path / "dup")
    lines = (dup / "corpus.jsonl").read_text().splitlines()
    (dup / "corpus.jsonl").write_text("\n".join([*lines, lines[3]]) + "\n")
    doc_id = json.loads(lines[3])["_id"]
    one_error_line(invoke("run", *local(dup)), str(dup / "corpus.jsonl"), f"'{doc_id}'")


def test_eval_of_a_run_with_no_judged_query_is_an_error(tmp_path, workdir):
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0 x\n")
    other = tmp_path / "other.txt"
    other.write_text("q9 0 d1 1\n")
    one_error_line(invoke("eval", str(run), "--qrels", str(other)), str(run), str(other))
    empty = tmp_path / "empty.tsv"
    empty.write_text("query-id\tcorpus-id\tscore\n")
    one_error_line(invoke("eval", str(run), "--qrels", str(empty)), str(empty), "judgements")
    # one judged query without hits among judged ones with hits still counts as 0
    both = tmp_path / "both.txt"
    both.write_text("q1 0 d1 1\nq9 0 d1 1\n")
    result = invoke("eval", str(run), "--qrels", str(both), "-M", "P@1", "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"P@1": 0.5}


def test_eval_of_a_run_file_without_qrels_says_to_give_them(tmp_path, workdir):
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 2.0 x\n")
    one_error_line(invoke("eval", str(run)), str(run), "--qrels")


def test_eval_output_into_a_run_directory_is_refused(beir_dir, workdir):
    assert invoke("run", *local(beir_dir)).exit_code == 0
    run_dir = workdir / "runs/tiny/bm25.numba"
    metrics = (run_dir / "metrics.json").read_bytes()
    qrels = beir_dir / "qrels/test.tsv"
    result = invoke("eval", str(run_dir / "run.trec"), "--qrels", str(qrels), "-M", "P@5",
                    "--output", str(run_dir))  # fmt: skip
    one_error_line(result, "is a run directory")
    assert (run_dir / "metrics.json").read_bytes() == metrics


def test_retrieve_removes_the_metrics_of_the_run_it_replaces(beir_dir, workdir):
    assert invoke("run", *local(beir_dir, "run_dir=runs/r")).exit_code == 0
    run_dir = workdir / "runs/r"
    metrics = (run_dir / "metrics.json").read_bytes()
    # the same run again: its metrics still hold
    assert invoke("retrieve", *local(beir_dir, "run_dir=runs/r")).exit_code == 0
    assert (run_dir / "metrics.json").read_bytes() == metrics
    assert "eval" in json.loads((run_dir / "manifest.json").read_text())["stages"]
    result = invoke("retrieve", *local(beir_dir, "run_dir=runs/r", "k=3"))
    assert result.exit_code == 0, result.output
    assert (run_dir / "run.trec").is_file()
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "perquery.tsv").exists()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "eval" not in manifest["stages"] and "metrics.json" not in manifest["outputs"]


def test_eval_with_other_measures_keeps_the_manifest_and_refuses_another_config(beir_dir, workdir):
    assert invoke("run", *local(beir_dir)).exit_code == 0
    run_dir = workdir / "runs/tiny/bm25.numba"
    before = json.loads((run_dir / "manifest.json").read_text())
    result = invoke("eval", *local(beir_dir), "-M", "P@10", "-M", "nDCG@10")
    assert result.exit_code == 0, result.output
    after = json.loads((run_dir / "manifest.json").read_text())
    for key in ("dataset", "encoder", "index"):  # were dropped: a manifest started afresh
        assert after[key] == before[key]
    assert {"index", "retrieve", "eval"} <= set(after["stages"])
    assert set(json.loads((run_dir / "metrics.json").read_text())) == {"P@10", "nDCG@10"}
    # the same run named another way (absolute paths, other threads): evaluated, and only the
    # measures change in what is recorded (threads stay those the run was retrieved with)
    config = (run_dir / "config.yaml").read_text()
    same = ["dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir.resolve()}", "k=20",
            f"run_dir={run_dir.resolve()}", "threads=1", "-M", "nDCG@10"]  # fmt: skip
    result = invoke("eval", *same)
    assert result.exit_code == 0, result.output
    now = (run_dir / "config.yaml").read_text()
    assert now.replace("- nDCG@10\n", "") == config.replace("- P@10\n", "").replace(
        "- nDCG@10\n", ""
    )
    assert json.loads((run_dir / "manifest.json").read_text())["threads"] == after["threads"]
    config = now
    # another encoder setting would relabel this run as k1=5: refused, nothing changes
    one_error_line(invoke("eval", *local(beir_dir, "encoder.k1=5")), "encoder.k1", "another config")
    assert (run_dir / "config.yaml").read_text() == config


def test_index_under_another_config_leaves_that_configs_results_as_they_are(beir_dir, workdir):
    assert invoke("run", *local(beir_dir, "run_dir=runs/i")).exit_code == 0
    run_dir = workdir / "runs/i"
    files = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    result = invoke("index", *local(beir_dir, "run_dir=runs/i", "encoder.k1=0.3"))
    assert result.exit_code == 0, result.output
    assert "holds the results of another config" in result.output
    # config.yaml, manifest.json and the results all stay those of k1=0.9
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == files
    assert invoke("reproduce", str(run_dir)).exit_code == 0


def test_a_sweep_with_one_run_dir_for_all_jobs_is_refused(beir_dir, workdir):
    result = invoke("run", "-m", *local(beir_dir, "encoder.k1=0.9,0.5", "run_dir=runs/sw"))
    one_error_line(result, "run_dir=runs/sw", "every job")
    assert not (workdir / "runs/sw").exists()


def test_a_failing_sweep_job_is_one_line_and_the_others_run(beir_dir, workdir, tmp_path):
    no_docs = copy_beir(beir_dir, tmp_path / "no_docs")
    (no_docs / "corpus.jsonl").write_text("")
    result = invoke(
        "run", "-m", "dataset=local", "dataset.name=tiny", "k=20",
        f"dataset.path={beir_dir},{no_docs}",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "no docs" in result.output and "1 job(s) of the sweep failed" in result.output
    assert len(list((workdir / "runs/tiny").glob("*/*/run.trec"))) == 1


def test_an_output_path_that_is_a_file_is_one_line(beir_dir, workdir):
    blocker = workdir / "blocker"
    blocker.write_text("not a folder")
    result = invoke("run", *local(beir_dir, f"run_dir={blocker}/sub"))
    one_error_line(result, str(blocker), "give another path")
    run = workdir / "r.trec"
    run.write_text("q1 Q0 d1 1 1.0 t\n")
    folder = workdir / "out"
    folder.mkdir()
    # named the temporary file in the folder's parent before
    one_error_line(
        invoke("fuse", str(run), str(run), "-o", str(folder)), f"{folder}: is a directory"
    )
    assert [p.name for p in workdir.iterdir() if ".tmp" in p.name] == []


def test_fuse_needs_two_runs_and_compare_names_a_missing_one(tmp_path, workdir):
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 2.0 x\n")
    qrels = tmp_path / "q.txt"
    qrels.write_text("q1 0 d1 1\n")
    one_error_line(invoke("fuse", str(run), "-o", str(tmp_path / "f.trec")), "two runs")
    assert not (tmp_path / "f.trec").exists()
    missing = tmp_path / "missing"
    one_error_line(
        invoke("compare", str(run), str(missing), "--qrels", str(qrels)), str(missing), "no such"
    )


def test_reproduce_names_an_unreadable_config_or_manifest(beir_dir, workdir):
    assert invoke("run", *local(beir_dir, "run_dir=runs/p")).exit_code == 0
    run_dir = workdir / "runs/p"
    (run_dir / "manifest.json").write_text("{nope")
    one_error_line(invoke("reproduce", str(run_dir)), "manifest.json", "unreadable")
    (run_dir / "config.yaml").write_text("{{{: [")
    one_error_line(invoke("reproduce", str(run_dir)), "config.yaml", "unreadable")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bench", "index", "--nope"], "No such option: --nope"),
        (["synth", "--from", "x.npz", "--docs", "0", "-o", "s.npz"], "'--docs'"),
        (["compare"], "Missing argument"),
        (["nope"], "No such command"),
    ],
)
def test_usage_mistakes_are_one_line_from_the_console_script(argv, needle, capsys):
    from irbench.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("irbench: error: ") and needle in err, err


def test_the_console_script_passes_exit_codes_through(capsys):
    from irbench.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "Usage" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "k=0"])
    assert exit_info.value.code == 2


def test_a_config_error_in_one_sweep_job_is_one_line(beir_dir, workdir):
    result = invoke("run", "-m", *local(beir_dir, "k=0,20"))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "k must be a positive integer" in result.output
    assert "1 job(s) of the sweep failed: [0]" in result.output
    assert len(list((workdir / "runs/tiny").glob("*/*/run.trec"))) == 1


def test_failed_jobs_on_the_joblib_launcher_fail_the_sweep(beir_dir, workdir, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    no_docs = copy_beir(beir_dir, tmp_path / "no_docs")
    (no_docs / "corpus.jsonl").write_text("")
    result = invoke(
        "run",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "dataset=local",
        "dataset.name=tiny",
        "k=20",
        f"dataset.path={beir_dir},{no_docs}",
    )  # fmt: skip  (each job runs in a worker process)
    assert result.exit_code == 2, result.output
    assert "1 job(s) of the sweep failed" in result.output


def test_encode_shard_may_come_from_the_environment(beir_dir, workdir, monkeypatch):
    from irbench.config import compose
    from irbench.runs.shards import plan

    monkeypatch.setenv("TASK_ID", "1")
    cfg = compose(["encode.shard=${oc.env:TASK_ID}", "encode.num_shards=2"])
    assert plan(cfg.encode, 10).shard == 1
    monkeypatch.setenv("TASK_ID", "x")
    with pytest.raises(Exception, match="encode.shard must be an integer"):
        compose(["encode.shard=${oc.env:TASK_ID}", "encode.num_shards=2"])


def test_reproduce_never_deletes_a_work_dir_that_is_not_a_run(beir_dir, workdir):
    assert invoke("run", *local(beir_dir, "run_dir=runs/w")).exit_code == 0
    precious = workdir / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    result = invoke("reproduce", str(workdir / "runs/w"), "--work-dir", str(precious))
    one_error_line(result, str(precious), "not a run directory")
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_a_fused_inputs_config_error_names_the_key_under_fusion(beir_dir, workdir):
    result = invoke("run", *local(beir_dir, "fusion=rrf", "fusion.second.encoder.backbone=/nope"))
    one_error_line(result, "fused input 2", "fusion.second.encoder.backbone")


@pytest.mark.parametrize("command", ["index", "retrieve"])
def test_index_and_retrieve_refuse_a_fused_config(beir_dir, workdir, command):
    one_error_line(invoke(command, *local(beir_dir, "fusion=rrf")), f"irbench {command}", "run")


def test_an_unknown_index_option_is_refused_before_encoding(beir_dir, workdir):
    result = invoke("run", *local(beir_dir, "index=numba_approx", "+index.n_posting=0"))
    one_error_line(result, "index.n_posting", "n_postings")
    assert not (workdir / "runs" / ".cache" / "index").exists()


@pytest.mark.parametrize(
    "override",
    ["index.query_cut=abc", "index.query_cut=2.5", "index.n_postings=abc", "index.max_fraction=inf",
     "index.heap_factor=true"],
)  # fmt: skip
def test_an_approx_knob_of_the_wrong_type_is_refused_before_encoding(beir_dir, workdir, override):
    # these were tracebacks after encoding, or silently truncated (query_cut=2.5 ran with 2)
    result = invoke("run", *local(beir_dir, "index=numba_approx", override))
    one_error_line(result, override.split("=")[0])
    assert not (workdir / "runs" / ".cache").exists()


def test_a_sweep_of_index_with_fusion_is_one_line(beir_dir, workdir):
    result = invoke("index", "-m", *local(beir_dir, "fusion=rrf", "encoder.k1=0.9,1.2"))
    assert result.exit_code == 2 and "fusion= combines two" in result.output
    assert "Traceback" not in result.output


def test_the_fused_key_rewrite_leaves_paths_alone():
    from irbench.pipeline import second_input_keys

    text = "encoder.backbone: model folder '/m/index.bert' does not exist (models/encoder.v2)"
    got = second_input_keys(text)
    assert got.startswith("fusion.second.encoder.backbone:") and "'/m/index.bert'" in got
    assert "(models/encoder.v2)" in got


def test_a_splade_second_fused_input_takes_its_own_backbone():
    from irbench.config import compose

    cfg = compose(["fusion=rrf", "encoder@fusion.second.encoder=splade",
                   "fusion.second.encoder.backbone=/models/x"])  # fmt: skip
    second = cfg.fusion.second.encoder
    assert second.query.backbone == second.doc.backbone == "/models/x"
