"""irbench train on a tiny random BERT and generated data (no network): losses, regularisers, the
sparse max-projection gradient, data, resume, checkpoints, the CLI and config errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from irbench.errors import ConfigError, DataError
from irbench.train.losses import infonce, kl_distillation, margin_mse, own_scores
from irbench.train.regularizers import flops, l1, regularization, warmup_weight
from tests.conftest import save_tiny_bert
from tests.test_sparse_encoders import WORDS, _vocab

TOPICS = WORDS[2:]  # content words of the tiny vocabulary ("the", "a" left out)


def make_tiny_bert(folder: Path, dropout: float = 0.1) -> Path:
    """A random 2-layer BERT masked-LM (hidden 16, vocab 200) whose vectors start sparse-ish."""

    def init(model) -> None:
        model.get_input_embeddings().weight.normal_(0.0, 0.5)
        model.cls.predictions.bias.normal_(-0.5, 0.5)

    return save_tiny_bert(folder, _vocab(), max_length=48, dropout=dropout, init=init)


def make_train_beir(folder: Path, n_docs: int = 120, n_queries: int = 100, seed: int = 0) -> Path:
    """Docs of 8 topic words; each query is 3 words of its doc: learnable by term matching."""
    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    docs = [" ".join(rng.sample(TOPICS, 8)) for _ in range(n_docs)]
    with open(folder / "corpus.jsonl", "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": d}) + "\n")
    with (
        open(folder / "queries.jsonl", "w") as f,
        open(folder / "qrels" / "train.tsv", "w") as tr,
        open(folder / "qrels" / "test.tsv", "w") as te,
    ):
        for out in (tr, te):
            out.write("query-id\tcorpus-id\tscore\n")
        for q in range(n_queries):
            target = q % n_docs
            text = " ".join(rng.sample(docs[target].split(), 3))
            f.write(json.dumps({"_id": f"q{q}", "text": text}) + "\n")
            (tr if q < int(n_queries * 0.8) else te).write(f"q{q}\td{target}\t1\n")
    return folder


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("train-bert"))


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_train_beir(tmp_path_factory.mktemp("train-beir"))


def overrides(toy: Path, bert: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        "train=splade", "dataset=scifact", f"dataset.path={toy}", "dataset.split=test",
        "encoder=splade", f"encoder.backbone={bert}", f"run_dir={tmp / 'run'}",
        f"cache_dir={tmp / 'cache'}", "train.batch_size=8", "train.max_steps=6",
        "train.query_max_length=16", "train.doc_max_length=24", "train.optim.lr=5e-3",
        "train.optim.warmup_steps=0", "train.negatives.per_query=0", "train.log_every=1",
        "train.checkpoint.every=0", "train.threads=1", *extra,
    ]  # fmt: skip


def compose(*args: str):
    from irbench.config import compose as _compose

    return _compose(list(args))


# -- losses and regularisers ------------------------------------------------------------------------
def test_infonce_is_cross_entropy_over_batch_docs():
    torch.manual_seed(0)
    q, pos, neg = torch.rand(3, 5), torch.rand(3, 5), torch.rand(6, 5)
    docs = torch.cat([pos, neg])
    expected = sum(
        -torch.log_softmax(q[i] @ docs.T, dim=0)[i] for i in range(3)
    ) / 3  # fmt: skip
    assert torch.allclose(infonce(q, pos, neg), expected)
    own = own_scores(q, pos, neg)  # positive, then the query's own two negatives
    assert torch.allclose(own[1], torch.stack([q[1] @ pos[1], q[1] @ neg[2], q[1] @ neg[3]]))
    no_batch = -torch.log_softmax(own, dim=1)[:, 0].mean()
    assert torch.allclose(infonce(q, pos, neg, in_batch=False), no_batch)
    mask = torch.zeros(3, 9, dtype=torch.bool)
    mask[0, 1] = True  # doc 1 is also relevant to query 0: not a negative for it
    masked = infonce(q, pos, neg, mask=mask)
    scores = q @ docs.T
    scores[0, 1] = float("-inf")
    assert torch.allclose(masked, torch.nn.functional.cross_entropy(scores, torch.arange(3)))


def test_distillation_losses_vanish_when_the_student_matches_the_teacher():
    torch.manual_seed(0)
    q, pos, neg = torch.rand(2, 4), torch.rand(2, 4), torch.rand(4, 4)
    teacher = own_scores(q, pos, neg).detach()
    assert margin_mse(q, pos, neg, teacher).item() == pytest.approx(0.0, abs=1e-10)
    assert margin_mse(q, pos, neg, teacher + 3.0).item() == pytest.approx(0.0, abs=1e-10)
    assert kl_distillation(q, pos, neg, teacher).item() == pytest.approx(0.0, abs=1e-6)
    assert margin_mse(q, pos, neg, teacher * 2).item() > 0


def test_flops_l1_and_the_quadratic_warmup():
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert flops(w).item() == pytest.approx(2.0**2 + 0 + 1.0**2)
    assert l1(w).item() == pytest.approx(3.0)
    assert [warmup_weight(0.5, t, 10) for t in (1, 5, 10, 20)] == pytest.approx(
        [0.005, 0.125, 0.5, 0.5]
    )
    assert warmup_weight(0.5, 1, 0) == 0.5
    total, parts = regularization(w, 0.1, 0.01, step=5, warmup_steps=10)
    assert total.item() == pytest.approx(0.25 * (0.1 * 5.0 + 0.01 * 3.0))
    assert parts == pytest.approx({"flops": 5.0, "l1": 3.0})


@pytest.mark.parametrize("activation", ["log1p_relu", "relu"])
def test_sparse_max_projection_gradient_matches_autograd(activation):
    from irbench.encoders.sparse_heads import activate
    from irbench.train.model import project_max

    torch.manual_seed(1)
    t = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(130, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(130, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, 2:] = 0
    g = torch.randn(3, 130, dtype=torch.float64)
    (activate(project_max(t, mask, w, b, budget=64), activation) * g).sum().backward()
    got = [x.grad.clone() for x in (t, w, b)]
    for x in (t, w, b):
        x.grad = None
    logits = (t @ w.T + b).masked_fill(~mask.bool()[..., None], float("-inf"))
    (activate(logits.amax(dim=1), activation) * g).sum().backward()
    for mine, ref in zip(got, (t.grad, w.grad, b.grad), strict=True):
        assert torch.allclose(mine, ref, atol=1e-5)


# -- data -------------------------------------------------------------------------------------------
def test_examples_are_a_function_of_seed_and_position(toy, bert, tmp_path):
    from irbench.train.data import load
    from irbench.train.settings import from_config

    cfg = compose(*overrides(toy, bert, tmp_path, "train.negatives.per_query=2"))
    s = from_config(cfg)
    data = load(cfg, s)
    assert len(data) == 80 and data.info["negatives"]["retriever"] == "bm25"
    a = [data.example(p) for p in range(0, 170)]
    again = load(cfg, s)
    assert [again.example(p) for p in range(0, 170)] == a
    assert again.info["negatives"]["reused"]  # mined once, then read from cache_dir
    assert sorted(e.qid for e in a[:80]) == sorted(q.qid for q in data.queries)  # an epoch
    for e in a:
        relevant = data.qrels[e.qid]
        assert e.pos in relevant and len(e.negs) == 2
        assert not set(e.negs) & set(relevant)


def test_teacher_scores_and_triples_files(toy, bert, tmp_path):
    from irbench.train.data import load, read_teacher_scores
    from irbench.train.settings import from_config

    scores = tmp_path / "teacher.tsv"
    scores.write_text("qid\tdocid\tscore\nq0\td0\t9.5\nq0\td5\t1.0\nq0\td6\t2.0\nq1\td1\t3\n")
    assert read_teacher_scores(scores)["q0"] == {"d0": 9.5, "d5": 1.0, "d6": 2.0}
    cfg = compose(
        *overrides(toy, bert, tmp_path, "train=distil", f"train.data.teacher_scores={scores}",
                   "train.negatives.per_query=1")
    )  # fmt: skip
    data = load(cfg, from_config(cfg))
    assert [q.qid for q in data.queries] == ["q0"]  # q1 has no scored negative
    e = data.example(0)
    assert e.pos == "d0" and e.teacher == [9.5, {"d5": 1.0, "d6": 2.0}[e.negs[0]]]
    bad = tmp_path / "bad.tsv"
    bad.write_text("q0 d0 9.5\nq0 d5 high\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: score 'high'"):
        read_teacher_scores(bad)

    triples = tmp_path / "triples.tsv"
    triples.write_text("protein cells\tthe protein in cells\tlung virus\nmice\tmice data\tdna\n")
    cfg = compose(*overrides(toy, bert, tmp_path, f"train.data.triples={triples}",
                             "train.negatives.per_query=1"))  # fmt: skip
    data = load(cfg, from_config(cfg))
    assert data.info["triples_format"] == "text"
    pairs = {(data.docs[e.pos], data.docs[e.negs[0]]) for e in data.batch(0, 2)}
    assert pairs == {("the protein in cells", "lung virus"), ("mice data", "dna")}
    ids = tmp_path / "ids.tsv"
    ids.write_text("q3\td3\td9\n")
    cfg = compose(*overrides(toy, bert, tmp_path, f"train.data.triples={ids}",
                             "train.negatives.per_query=1"))  # fmt: skip
    data = load(cfg, from_config(cfg))
    assert data.info["triples_format"] == "ids" and data.example(0).negs == ["d9"]


# -- training ---------------------------------------------------------------------------------------
def _train(toy, bert, tmp, *extra, on_step=None):
    from irbench.train import train

    cfg = compose(*overrides(toy, bert, tmp, *extra))
    return cfg, train(cfg, on_step=on_step)


def _curve(run_dir: Path, key: str) -> list[float]:
    import csv

    with open(run_dir / "train" / "curves.csv") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def dev_before_after(run_dir: Path) -> tuple[float, float]:
    dev = _curve(run_dir, "dev_nDCG@10")
    return dev[0], dev[-1]


def test_loss_decreases_on_a_learnable_toy_problem(toy, bert, tmp_path):
    cfg, result = _train(
        toy, bert, tmp_path, "train.max_steps=40", "train.negatives.per_query=1",
        "train.data.dev_queries=10", "train.eval.every=20", "train.eval.depth=20",
    )  # fmt: skip
    run_dir = Path(cfg.run_dir)
    loss = _curve(run_dir, "rank_loss")
    assert len(loss) == 40
    assert dev_before_after(run_dir)[1] > dev_before_after(run_dir)[0]
    assert sum(loss[-10:]) / 10 < 0.8 * sum(loss[:10]) / 10
    dev = _curve(run_dir, "dev_nDCG@10")
    assert len(dev) == 3 and result.summary["best"]["value"] == pytest.approx(max(dev), abs=1e-6)
    assert (run_dir / "train" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (result.checkpoint / "irbench_encoder.yaml").is_file()


def test_distillation_from_a_teacher_encoder(toy, bert, tmp_path):
    cfg, result = _train(
        toy, bert, tmp_path, "train=distil", "train.data.teacher=splade",
        f"train.data.teacher_backbone={bert}", "train.negatives.per_query=1", "train.max_steps=2",
    )  # fmt: skip
    teacher = result.summary["data"]["teacher"]
    assert teacher["encoder"] == "splade" and not teacher["reused"]
    scores = (Path(teacher["cache"]) / "scores.tsv").read_text().splitlines()
    assert len(scores) >= 80 * 2  # each query: its positive and its candidate negatives
    assert result.summary["last"]["rank_loss"] >= 0


def test_dev_split_evaluation(toy, bert, tmp_path):
    cfg, result = _train(
        toy, bert, tmp_path, "train.max_steps=2", "train.data.split=train",
        "train.data.dev_split=test", "train.eval.every=2", "train.eval.depth=10",
    )  # fmt: skip
    assert result.summary["data"]["dev_queries"] == 20
    assert len(_curve(Path(cfg.run_dir), "dev_nDCG@10")) == 2  # before training and at step 2


def test_flops_weight_lowers_doc_nnz(toy, bert, tmp_path):
    nnz = {}
    for weight in (0.0, 0.5):
        cfg, _ = _train(
            toy, bert, tmp_path / str(weight), "train.max_steps=15", "train.reg.warmup_steps=0",
            f"train.reg.doc.flops={weight}", "train.reg.query.flops=0",
        )  # fmt: skip
        nnz[weight] = _curve(Path(cfg.run_dir), "d_nnz")
    assert nnz[0.5][0] == nnz[0.0][0]  # same start
    assert nnz[0.5][-1] < 0.7 * nnz[0.0][-1]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_resume_after_a_crash_gives_identical_weights(toy, bert, tmp_path):
    extra = ("train.max_steps=6", "train.checkpoint.every=2", "train.negatives.per_query=1")
    _, straight = _train(toy, bert, tmp_path / "a", *extra)

    def crash(step):
        if step == 5:
            raise KeyboardInterrupt  # killed after the state of step 4 was written

    with pytest.raises(KeyboardInterrupt):
        _train(toy, bert, tmp_path / "b", *extra, on_step=crash)
    states = sorted((tmp_path / "b" / "run" / "train" / "state").glob("step-*.pt"))
    assert [p.name for p in states] == ["step-0000002.pt", "step-0000004.pt"]
    _, resumed = _train(toy, bert, tmp_path / "b", *extra)
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary["steps"] == 6
    assert _curve(tmp_path / "b" / "run", "loss") == _curve(tmp_path / "a" / "run", "loss")
    _, again = _train(toy, bert, tmp_path / "b", *extra)  # finished: reused, not retrained
    assert again.reused


def test_checkpoint_loads_as_an_encoder(toy, bert, tmp_path):
    from omegaconf import OmegaConf

    from irbench.encoders.sparse import SparseNeuralEncoder

    _, result = _train(toy, bert, tmp_path, "train.max_steps=2")
    enc_cfg = OmegaConf.load(result.checkpoint / "irbench_encoder.yaml")
    assert enc_cfg.backbone == str(result.checkpoint) == enc_cfg.doc.backbone
    enc = SparseNeuralEncoder(backbone=str(result.checkpoint), device="cpu")
    vec = enc.encode_texts(["protein cells in the liver"])
    assert vec.shape == (1, 200) and vec.nnz > 0


def test_inference_free_and_mlp_sides_train(toy, bert, tmp_path):
    _, r = _train(toy, bert, tmp_path / "doc", "encoder=splade_doc", "train.max_steps=2",
                  "encoder.query.head=idf", "train.reg.doc.idf_aware=true",
                  "train.reg.doc.flops=0.01")  # fmt: skip
    assert r.summary["last"]["q_nnz"] > 0
    _, r = _train(toy, bert, tmp_path / "mlp", "encoder=unicoil", "train.max_steps=2")
    from safetensors.torch import load_file

    assert "tok_proj.weight" in load_file(str(r.checkpoint / "model.safetensors"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["train.loss.name=hinge"], "train.loss.name: unknown loss 'hinge'"),
        (["train.batch_size=6", "train.grad_accum=4"], "must be divisible by processes x grad_accum"),
        (["train.loss.name=margin_mse"], "set train.data.teacher_scores=FILE"),
        (["train.reg.doc.flops=-1"], "train.reg.doc.flops: expected a number >= 0"),
        (["train.precision=bf16"], "train.precision=bf16 needs a GPU"),
        (["encoder=bm25"], "encoder=bm25 cannot be trained"),
        (["train.negatives.retriever=nope", "train.negatives.per_query=1"],
         "train.negatives.retriever: unknown encoder preset 'nope'"),
        (["train.reg.doc.idf_aware=true"], "set encoder.query.head=idf"),
        (["train.eval.every=5"], "set train.data.dev_queries=N"),
    ],
)  # fmt: skip
def test_bad_config_is_a_one_line_error(toy, bert, tmp_path, extra, message):
    from irbench.train import train

    args = overrides(toy, bert, tmp_path, *extra)
    if "encoder=bm25" in extra:
        args = [a for a in args if not a.startswith("encoder.backbone")]
    with pytest.raises(ConfigError, match=message) as exc:
        train(compose(*args))
    assert "\n" not in str(exc.value)


def test_cli_train_then_run_chains_into_index_retrieve_eval(toy, bert, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from irbench.cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = overrides(toy, bert, tmp_path, "train.max_steps=3")
    res = runner.invoke(app, ["train", *args])
    assert res.exit_code == 0, res.output
    assert "model trained:" in res.output
    res = runner.invoke(app, ["run", *args])  # reuses the finished training, then evaluates
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["train"]["reused"] is True
    assert manifest["encoder"]["config"]["doc"]["backbone"].startswith("sha256:")
    assert json.loads((run_dir / "metrics.json").read_text())["nDCG@10"] > 0
    res = runner.invoke(app, ["train", *args, "train.loss.name=hinge"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "unknown loss 'hinge'" in res.output


@pytest.mark.parametrize("recipe", ["splade", "distil"])
def test_every_train_recipe_composes_and_validates(recipe):
    from irbench.config import group_options
    from irbench.train.settings import from_config

    assert set(group_options("train")) == {"splade", "distil"}
    cfg = compose(f"train={recipe}", "encoder=splade", "train.data.teacher_scores=t.tsv")
    s = from_config(cfg)
    assert s.name == recipe and s.batch_size % s.grad_accum == 0
    assert cfg.run_dir == f"runs/scifact/splade-{recipe}.numba"
    assert compose("train=splade", "encoder=splade", "run_dir=elsewhere").run_dir == "elsewhere"
    assert compose().get("train") is None


# -- audit regressions (session 17) -----------------------------------------------------------------
def test_a_run_that_replaces_a_finished_one_invalidates_its_summary(toy, bert, tmp_path):
    """B (another lr, same run_dir) crashes after starting: A run again must not "reuse" the
    checkpoint folder B was writing, on the strength of A's old summary."""
    extra = ("train.max_steps=3",)
    _, first = _train(toy, bert, tmp_path, *extra)
    summary = tmp_path / "run" / "train" / "summary.json"
    assert summary.is_file()

    def crash(step):
        raise KeyboardInterrupt

    with pytest.raises(ConfigError):  # a mistake, stopped before any training: summary kept
        _train(toy, bert, tmp_path, *extra, "train.reg.doc.idf_aware=true")
    assert summary.is_file() and _train(toy, bert, tmp_path, *extra)[1].reused
    with pytest.raises(KeyboardInterrupt):
        _train(toy, bert, tmp_path, *extra, "train.optim.lr=5e-2", on_step=crash)
    assert not summary.exists()
    a = _weights(first.checkpoint)
    _, again = _train(toy, bert, tmp_path, *extra)
    assert not again.reused
    b = _weights(again.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_threads_hold_after_mining_on_a_cold_cache(toy, bert, tmp_path):
    seen = []
    _train(toy, bert, tmp_path, "train.max_steps=1", "train.negatives.per_query=1",
           "train.negatives.retriever=self", "threads=0",
           on_step=lambda step: seen.append(torch.get_num_threads()))  # fmt: skip
    assert seen == [1]  # train.threads=1; mining (a neural miner, threads=0) reset it to all


def _graded_toy(tmp_path: Path) -> Path:
    folder = make_train_beir(tmp_path / "graded")
    with open(folder / "qrels" / "train.tsv", "a") as f:
        f.write("q0\td5\t0\n")  # judged non-relevant
    return folder


def test_judged_non_relevant_docs_stay_negatives_and_teacher_files_are_checked(bert, tmp_path):
    from irbench.train.data import load, read_teacher_scores
    from irbench.train.settings import from_config

    toy = _graded_toy(tmp_path)
    scores = tmp_path / "teacher.tsv"
    scores.write_text("q0\td0\t9.5\nq0\td5\t1.0\nq0\td6\t2.0\n")
    args = ("train=distil", f"train.data.teacher_scores={scores}", "train.negatives.per_query=2")
    cfg = compose(*overrides(toy, bert, tmp_path, *args))
    data = load(cfg, from_config(cfg))
    assert sorted(data.queries[0].negatives) == ["d5", "d6"]  # d5 (grade 0) was dropped
    cfg = compose(*overrides(toy, bert, tmp_path, *args[:2], "train.negatives.per_query=3"))
    with pytest.raises(DataError, match="fewer than train.negatives.per_query=3 .* 'q0' has 2"):
        load(cfg, from_config(cfg))  # was a KeyError once an unscored filler was drawn
    dup = tmp_path / "dup.tsv"
    dup.write_text("q0\td0\t5.0\nq0\td0\t-3.0\n")
    with pytest.raises(DataError, match=r"dup.tsv:2: a second score for query q0, doc d0"):
        read_teacher_scores(dup)
    stranger = tmp_path / "stranger.tsv"
    stranger.write_text("x9\td0\t1.0\nx9\td1\t0.5\n")
    cfg = compose(*overrides(toy, bert, tmp_path, "train=distil",
                             f"train.data.teacher_scores={stranger}", "train.negatives.per_query=1"))  # fmt: skip
    with pytest.raises(DataError, match=r"stranger.tsv: none of its 1 query ids \(e.g. 'x9'\)"):
        load(cfg, from_config(cfg))


def test_triples_headers_ids_and_shared_texts(toy, bert, tmp_path):
    from irbench.train.data import load
    from irbench.train.settings import from_config
    from irbench.train.trainer import _relevant_mask

    def data_for(text: str, *extra: str):
        path = tmp_path / "t.tsv"
        path.write_text(text)
        cfg = compose(*overrides(toy, bert, tmp_path, f"train.data.triples={path}",
                                 "train.negatives.per_query=1", *extra))  # fmt: skip
        return load(cfg, from_config(cfg))

    data = data_for("query\tpositive\tnegative\nq3\td3\td9\nq4\td4\td8\n")  # a header line
    assert data.info["triples_format"] == "ids" and len(data) == 2
    with pytest.raises(DataError, match=r"t.tsv:3: query id 'q85' is not a query of split"):
        data_for("q3\td3\td9\n\nq85\td5\td9\n")  # q85 is a test query: not text, an error
    with pytest.raises(DataError, match=r"t.tsv:1: negative id 'nope' is not a doc"):
        data_for("q3\td3\tnope\n")
    text = (
        "what is aspirin\taspirin is a drug\tlung virus\nwhat is aspirin\taspirin is a drug\tdna\n"
    )
    data = data_for(text)
    batch = data.batch(0, 2)
    assert batch[0].pos == batch[1].pos  # one passage, one id
    doc_ids = [e.pos for e in batch] + [d for e in batch for d in e.negs]
    mask = _relevant_mask(data, batch, doc_ids, "cpu")
    assert mask is not None and mask[0, 1] and mask[1, 0]  # not each other's negative
    with pytest.raises(ConfigError, match="triples has no dev queries"):
        data_for(text, "train.data.dev_queries=1")


def test_inference_only_settings_reuse_a_finished_training(toy, bert, tmp_path):
    from irbench.train.trainer import config_hash

    base = overrides(toy, bert, tmp_path, "train.max_steps=2")
    h = config_hash(compose(*base))
    for same in ("encoder.batch_size=7", "encoder.doc.top_k=50", "encoder.query.quantize=100",
                 "dataset.split=train", "encoder.threads=1"):  # fmt: skip
        assert config_hash(compose(*base, same)) == h, same
    for other in ("encoder.doc.max_length=20", "train.optim.lr=1e-3", "encoder.doc.pooling=sum"):
        assert config_hash(compose(*base, other)) != h, other
    mined_by_itself = (*base, "train.negatives.retriever=self")  # then top_k changes negatives
    assert config_hash(compose(*mined_by_itself, "encoder.doc.top_k=50")) != config_hash(
        compose(*mined_by_itself)
    )
    _train(toy, bert, tmp_path, "train.max_steps=2")
    _, again = _train(toy, bert, tmp_path, "train.max_steps=2", "encoder.batch_size=7")
    assert again.reused
