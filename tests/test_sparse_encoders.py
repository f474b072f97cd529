"""SPLADE-family sparse encoders on a tiny random BERT (no network), plus splade-tiny when present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from irbench.encoders import hf
from irbench.encoders.sparse import SparseNeuralEncoder
from irbench.encoders.sparse_heads import activate, fused_project, naive_project
from irbench.errors import ConfigError, DataError, IrbenchError
from irbench.types import Doc, Query, SparseEncoder

SPLADE_TINY = Path(__file__).resolve().parents[2] / "shared" / "models" / "splade-tiny"
SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a of protein cell cells gene genes cancer tumor study studies result results "
    "patient patients risk effect effects blood brain heart lung liver virus bacteria drug "
    "drugs dose treatment trial mouse mice human dna rna expression level levels increase "
    "decrease high low role function model data analysis method methods group control"
).split()
TEXTS = [
    "the protein expression in cancer cells",
    "a study of patients with heart disease and high blood pressure",
    "mice",
    "",
    "gene expression levels increase the risk of tumor growth in human liver cells " * 3,
    "drug dose treatment trial results for lung cancer patients",
    "virus bacteria dna rna",
]


def _vocab() -> list[str]:
    pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = list(dict.fromkeys(SPECIALS + WORDS + letters + pieces))
    vocab += [f"tok{i}" for i in range(200 - len(vocab))]
    return vocab


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT masked-LM (hidden 16, vocab 200) and its WordPiece tokenizer."""
    from transformers import AutoTokenizer

    from tests.conftest import save_tiny_bert

    def spread(model) -> None:  # logits around 0, so that many weights are positive
        model.cls.predictions.decoder.bias.normal_(0.0, 1.0)
        model.get_input_embeddings().weight.normal_(0.0, 0.5)

    folder = tmp_path_factory.mktemp("tiny-bert")
    save_tiny_bert(folder, _vocab(), max_length=48, init=spread)
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert len(tok) == 200 and tok("the protein")["input_ids"] == [2, 5, 8, 3]
    return folder


def make(backbone: Path, **kw) -> SparseNeuralEncoder:
    sides = {side: kw.pop(side, {}) for side in ("query", "doc")}
    return SparseNeuralEncoder(backbone=str(backbone), device="cpu", **sides, **kw)


def naive_vectors(backbone: Path, texts: list[str], pooling="max", activation="log1p_relu"):
    """One text at a time through the unmodified masked-LM: full logits, then pooling."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(backbone))
    model = AutoModelForMaskedLM.from_pretrained(str(backbone)).eval()
    limit = min(tok.model_max_length, model.config.max_position_embeddings)
    rows = []
    with torch.inference_mode():
        for text in texts:
            enc = tok([text], truncation=True, max_length=limit, return_tensors="pt")
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            vec = naive_project(logits, enc["attention_mask"], pooling, activation)[0]
            vec[tok.all_special_ids] = 0
            rows.append(vec.numpy())
    return np.stack(rows)


def docs_of(texts: list[str]) -> list[Doc]:
    return [Doc(f"d{i}", t) for i, t in enumerate(texts)]


def encode_docs(enc: SparseNeuralEncoder, texts: list[str]) -> sp.csr_matrix:
    parts = list(enc.encode_corpus(docs_of(texts)))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, enc.vocab_size))


def special_ids(backbone: Path) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(backbone)).all_special_ids


def assert_canonical(m: sp.csr_matrix) -> None:
    assert sp.isspmatrix_csr(m) and m.dtype == np.float32
    assert m.has_sorted_indices and not (m.data == 0).any()
    for r in range(m.shape[0]):
        cols = m.indices[m.indptr[r] : m.indptr[r + 1]]
        assert (np.diff(cols) > 0).all()


# -- the fused projection ---------------------------------------------------------------------------
@pytest.mark.parametrize("pooling", ["max", "sum"])
@pytest.mark.parametrize("activation", ["log1p_relu", "relu", "softplus", "identity"])
@pytest.mark.parametrize("budget", [64, 1000, 1 << 20])
def test_fused_projection_equals_full_logits(pooling, activation, budget):
    g = torch.Generator().manual_seed(1)
    b, length, h, v = 7, 9, 8, 203
    t = torch.randn(b, length, h, generator=g)
    weight = torch.randn(v, h, generator=g)
    bias = torch.randn(v, generator=g)
    mask = torch.zeros(b, length, dtype=torch.long)
    for i, n in enumerate([9, 7, 7, 3, 1]):  # padding on all but the first row
        mask[i, :n] = 1
    mask[5, [0, 2, 5]] = 1  # holes; row 6 has no position at all
    t[mask == 0] = 100.0  # padded positions must not leak into the result
    got = fused_project(t, mask, weight, bias, pooling, activation, budget)
    expected = naive_project(t @ weight.T + bias, mask, pooling, activation)
    expected[6] = 0.0  # a row without positions has no terms
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_activations_are_monotone_so_max_commutes():
    x = torch.linspace(-5, 5, 101)
    for name in ("log1p_relu", "relu", "softplus", "identity"):
        y = activate(x, name)
        assert (y[1:] >= y[:-1]).all(), name


def test_mlm_encoder_equals_naive_full_logits(tiny_bert):
    enc = make(tiny_bert, batch_size=3, chunk_budget=256)
    got = encode_docs(enc, TEXTS)
    assert_canonical(got)
    assert got.shape == (len(TEXTS), 200) and enc.vocab_size == 200
    np.testing.assert_allclose(got.toarray(), naive_vectors(tiny_bert, TEXTS), rtol=1e-5, atol=1e-5)
    assert got.nnz > 0


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_mlm_pooling_and_activation_options(tiny_bert, pooling):
    side = {"pooling": pooling, "activation": "relu"}
    enc = make(tiny_bert, doc=side)
    got = encode_docs(enc, TEXTS[:3]).toarray()
    np.testing.assert_allclose(
        got, naive_vectors(tiny_bert, TEXTS[:3], pooling, "relu"), rtol=1e-5, atol=1e-4
    )


def test_special_tokens_never_become_terms(tiny_bert):
    specials = special_ids(tiny_bert)
    assert sorted(specials) == [0, 1, 2, 3, 4]
    texts = TEXTS + ["[MASK] [UNK] [SEP] [CLS] protein", "qqqq zzzz"]
    for doc_side in ({"head": "mlm"}, {"head": "mlp"}, {"head": "binary"}):
        enc = make(tiny_bert, doc=doc_side)
        m = encode_docs(enc, texts)
        assert not np.isin(m.indices, specials).any(), doc_side
    # the raw masked-LM output does give the special tokens weight: the removal is real
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = AutoModelForMaskedLM.from_pretrained(str(tiny_bert)).eval()
    with torch.inference_mode():
        enc_in = tok(texts[:3], padding=True, return_tensors="pt")
        raw = naive_project(model(**enc_in).logits, enc_in["attention_mask"], "max", "log1p_relu")
    assert (raw[:, specials] > 0).any()


def test_added_special_tokens_never_become_terms(tiny_bert, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path / "bert-added"
    shutil.copytree(tiny_bert, folder)
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.add_tokens(["[BAR]"], special_tokens=True)
    tok.save_pretrained(folder)
    bar = AutoTokenizer.from_pretrained(str(folder)).convert_tokens_to_ids("[BAR]")
    assert bar not in AutoTokenizer.from_pretrained(str(folder)).all_special_ids  # the gap
    m = encode_docs(make(folder, doc={"head": "binary"}), ["the protein [BAR] cells"])
    assert m.nnz and bar not in m.indices


def test_a_max_length_beyond_the_models_positions_is_capped(tiny_bert):
    long_text = " ".join(["protein cells"] * 60)  # ~120 tokens; the model has 64 positions
    capped = encode_docs(make(tiny_bert, doc={"max_length": 500}), [long_text])
    at_limit = encode_docs(make(tiny_bert, doc={"max_length": 64}), [long_text])
    assert (capped != at_limit).nnz == 0 and capped.nnz


def test_length_sorted_batching_keeps_input_order(tiny_bert):
    one = encode_docs(make(tiny_bert, batch_size=1), TEXTS).toarray()
    many = encode_docs(make(tiny_bert, batch_size=4, sort_window=5), TEXTS).toarray()
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6)
    perm = [3, 0, 6, 2, 5, 1, 4]
    permuted = encode_docs(make(tiny_bert, batch_size=4), [TEXTS[i] for i in perm]).toarray()
    np.testing.assert_allclose(permuted, one[perm], rtol=1e-5, atol=1e-6)
    # windows of 5 docs: two batches yielded, in order
    batches = list(make(tiny_bert, sort_window=5).encode_corpus(docs_of(TEXTS)))
    assert [b.shape[0] for b in batches] == [5, 2]


def test_worker_threads_give_the_same_vectors(tiny_bert):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial = encode_docs(make(tiny_bert, batch_size=2), TEXTS).toarray()
        torch.set_num_threads(3)  # three workers, one batch each at most
        pooled = encode_docs(make(tiny_bert, batch_size=2), TEXTS).toarray()
        assert torch.get_num_threads() == 3  # restored after the workers
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(pooled, serial, rtol=1e-5, atol=1e-6)


def test_queries_use_the_query_side(tiny_bert):
    enc = make(tiny_bert, query={"head": "binary"})
    q = enc.encode_queries([Query("q1", "protein protein cancer"), Query("q2", "")])
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    ids = sorted(set(tok("protein cancer", add_special_tokens=False)["input_ids"]))
    assert q.shape == (2, 200)
    assert q[0].indices.tolist() == ids and q[0].data.tolist() == [1.0] * len(ids)
    assert q[1].nnz == 0
    assert isinstance(enc, SparseEncoder) and enc.kind == "sparse" and enc.shardable


# -- top_k and quantize -----------------------------------------------------------------------------
def test_top_k_keeps_the_highest_weights(tiny_bert):
    full = encode_docs(make(tiny_bert), TEXTS)
    k = 5
    pruned = encode_docs(make(tiny_bert, doc={"top_k": k}), TEXTS)
    assert_canonical(pruned)
    for r in range(len(TEXTS)):
        row, kept = full[r].toarray()[0], pruned[r]
        assert kept.nnz == min(k, full[r].nnz)
        if kept.nnz:
            assert kept.data.min() >= np.sort(row)[::-1][kept.nnz - 1]
            np.testing.assert_array_equal(kept.data, row[kept.indices])


def test_top_k_ties_prefer_lower_ids(tiny_bert):
    enc = make(tiny_bert, query={"head": "binary", "top_k": 2})
    q = enc.encode_queries([Query("q", "virus bacteria dna rna")])
    full = make(tiny_bert, query={"head": "binary"}).encode_queries(
        [Query("q", "virus bacteria dna rna")]
    )
    assert q.indices.tolist() == sorted(full.indices.tolist())[:2]


def test_quantize_rounds_weights(tiny_bert):
    full = encode_docs(make(tiny_bert), TEXTS)
    scale = 4.0
    q = encode_docs(make(tiny_bert, doc={"quantize": scale}), TEXTS)
    assert_canonical(q)
    expected = np.round(full.toarray().astype(np.float64) * scale) / scale
    np.testing.assert_allclose(q.toarray(), expected, atol=1e-6)
    assert q.nnz < full.nnz  # small weights round to 0 and are dropped
    np.testing.assert_allclose(q.data * scale, np.round(q.data * scale), atol=1e-5)


# -- per-token heads --------------------------------------------------------------------------------
def test_binary_and_sum_pooling_count(tiny_bert):
    texts = ["protein protein cancer the", "the"]
    binary = make(tiny_bert, doc={"head": "binary"})
    counts = make(tiny_bert, doc={"head": "binary", "pooling": "sum"})
    b, c = encode_docs(binary, texts), encode_docs(counts, texts)
    assert_canonical(b)
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(str(tiny_bert)).get_vocab()
    assert b[0, vocab["protein"]] == 1.0 and c[0, vocab["protein"]] == 2.0
    assert c[0, vocab["cancer"]] == 1.0 and b[1].nnz == 1


def test_idf_head_needs_fit_and_round_trips(tiny_bert, tmp_path):
    enc = make(tiny_bert, query={"head": "idf"})
    assert enc.needs_fit
    with pytest.raises(IrbenchError, match="fit"):
        enc.encode_queries([Query("q", "protein")])
    docs = docs_of(["protein cancer", "protein cells", "cancer", "the liver"])
    enc.fit(docs)
    encode_docs(enc, [d.text for d in docs])  # the doc side is an mlm head
    q = enc.encode_queries([Query("q", "protein liver mice")])
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(str(tiny_bert)).get_vocab()
    n = 4

    def idf(df):
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    assert q[0, vocab["protein"]] == pytest.approx(idf(2), rel=1e-6)
    assert q[0, vocab["liver"]] == pytest.approx(idf(1), rel=1e-6)
    assert q[0, vocab["mice"]] == pytest.approx(idf(0), rel=1e-6)  # unseen: the highest idf

    enc.save(tmp_path / "enc")
    again = make(tiny_bert, query={"head": "idf"})
    again.load(tmp_path / "enc")
    q2 = again.encode_queries([Query("q", "protein liver mice")])
    assert (q2 != q).nnz == 0
    other = make(tiny_bert, query={"head": "idf"}, doc={"top_k": 3})
    with pytest.raises(DataError, match="doc-side"):
        other.load(tmp_path / "enc")


def test_save_load_round_trip_without_corpus_state(tiny_bert, tmp_path):
    enc = make(tiny_bert)
    queries = [Query("q1", "protein expression"), Query("q2", "heart disease risk")]
    before = enc.encode_queries(queries)
    enc.save(tmp_path / "enc")
    meta = json.loads((tmp_path / "enc" / "sparse_encoder.json").read_text())
    assert meta["format"] == 1 and meta["vocab_size"] == 200
    again = make(tiny_bert)
    again.load(tmp_path / "enc")
    assert "q" in again._sides  # load() readies the query model: query latency excludes loading
    assert abs(again.encode_queries(queries) - before).max() == 0
    with pytest.raises(DataError, match="missing"):
        again.load(tmp_path / "nothing")


def test_mlp_head_weights_input_tokens_only(tiny_bert):
    enc = make(tiny_bert, doc={"head": "mlp", "activation": "relu"})
    m = encode_docs(enc, TEXTS)
    assert_canonical(m)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    for r, text in enumerate(TEXTS):
        ids = set(tok(text, truncation=True, max_length=48)["input_ids"]) - set(tok.all_special_ids)
        assert set(m[r].indices.tolist()) <= ids
    assert m.nnz > 0
    # the untrained layer is seeded: same seed, same vectors; another seed, others
    same = encode_docs(make(tiny_bert, doc={"head": "mlp", "activation": "relu"}), TEXTS)
    other = encode_docs(
        make(tiny_bert, doc={"head": "mlp", "activation": "relu", "seed": 1}), TEXTS
    )
    assert abs(same - m).max() == 0 and abs(other - m).max() > 0


def test_mlp_head_uses_a_trained_tok_proj(tiny_bert, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path / "unicoil"
    shutil.copytree(tiny_bert, folder)
    state = load_file(str(folder / "model.safetensors"))
    g = torch.Generator().manual_seed(3)
    state["tok_proj.weight"] = torch.randn(1, 16, generator=g)
    state["tok_proj.bias"] = torch.tensor([0.5])
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    enc = make(folder, doc={"head": "mlp", "activation": "relu", "pooling": "max"})
    m = encode_docs(enc, ["protein cancer protein"])
    tok = AutoTokenizer.from_pretrained(str(folder))
    body = AutoModel.from_pretrained(str(folder)).eval()
    inputs = tok(["protein cancer protein"], return_tensors="pt")
    with torch.inference_mode():
        hidden = body(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        w = torch.relu(hidden.last_hidden_state[0] @ state["tok_proj.weight"][0] + 0.5)
    ids = inputs["input_ids"][0].tolist()
    vocab = tok.get_vocab()
    protein = max(float(w[i]) for i, t in enumerate(ids) if t == vocab["protein"])
    assert m[0, vocab["protein"]] == pytest.approx(protein, rel=1e-5)


# -- config ------------------------------------------------------------------------------------------
def test_config_key_changes_with_settings(tiny_bert, tmp_path):
    base = make(tiny_bert).config_key()
    assert base["format"] == 1 and base["doc"]["backbone"].startswith("sha256:")
    variants = [
        {"doc": {"head": "mlp"}},
        {"doc": {"pooling": "sum"}},
        {"doc": {"activation": "relu"}},
        {"doc": {"max_length": 16}},
        {"doc": {"top_k": 10}},
        {"doc": {"quantize": 100}},
        {"query": {"head": "binary"}},
        {"query": {"max_length": 8}},
        {"autocast": "bf16"},
    ]
    keys = [make(tiny_bert, **v).config_key() for v in variants]
    for v, k in zip(variants, keys, strict=True):
        assert k != base, v
    assert len({json.dumps(k, sort_keys=True) for k in keys}) == len(keys)
    # settings that do not change vectors do not change the key
    assert make(tiny_bert, batch_size=7, threads=1, sort_window=3).config_key() == base
    # a binary side ignores its activation
    a = make(tiny_bert, query={"head": "binary", "activation": "relu"}).config_key()
    b = make(tiny_bert, query={"head": "binary", "activation": "softplus"}).config_key()
    assert a == b
    # the fingerprint follows the model files
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    assert make(copy).config_key() == base
    cfg = json.loads((copy / "config.json").read_text())
    cfg["layer_norm_eps"] = 1e-6
    (copy / "config.json").write_text(json.dumps(cfg))
    assert make(copy).config_key() != base
    assert hf.model_fingerprint(str(copy)) == make(copy).config_key()["doc"]["backbone"]


def test_missing_backbone_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^encoder\.backbone: model folder .* does not exist"):
        make(tmp_path / "no-such-model").config_key()
    enc = SparseNeuralEncoder(backbone=str(tmp_path / "nope"), device="cpu")
    with pytest.raises(ConfigError, match="encoder.backbone"):
        list(enc.encode_corpus(docs_of(["x"])))
    side = SparseNeuralEncoder(
        backbone="org/model", query={"backbone": "./missing/q"}, device="cpu"
    )
    with pytest.raises(ConfigError, match=r"^encoder\.query\.backbone:"):
        side.config_key()


def test_bad_settings_are_config_errors(tiny_bert):
    for kw, key in [
        ({"doc": {"head": "dense"}}, "encoder.doc.head"),
        ({"doc": {"pooling": "mean"}}, "encoder.doc.pooling"),
        ({"query": {"activation": "tanh"}}, "encoder.query.activation"),
        ({"doc": {"top_k": 0}}, "encoder.doc.top_k"),
        ({"doc": {"quantize": -1}}, "encoder.doc.quantize"),
        ({"doc": {"max_len": 3}}, "encoder.doc.max_len"),
        ({"batch_size": 0}, "encoder.batch_size"),
        ({"autocast": "int8"}, "encoder.autocast"),
        ({"doc": {"seed": "abc"}}, "encoder.doc.seed"),
        ({"doc": {"seed": 1.7}}, "encoder.doc.seed"),  # was truncated to 1
        ({"doc": {"quantize": True}}, "encoder.doc.quantize"),  # was a scale of 1.0
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            make(tiny_bert, **kw)


def test_unusable_devices_are_config_errors():
    from irbench.encoders.hf import resolve_device

    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.backends.mps.is_available():  # was a traceback from the first model call
        with pytest.raises(ConfigError, match="encoder.device=mps"):
            resolve_device("mps")
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA devices are visible"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_different_vocabularies_are_rejected(tiny_bert, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_bert, other)
    spec = json.loads((other / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    vocab["zzzz"] = vocab.pop(max(vocab, key=vocab.__getitem__))
    (other / "tokenizer.json").write_text(json.dumps(spec))
    enc = make(tiny_bert, query={"backbone": str(other), "head": "binary"})
    with pytest.raises(ConfigError, match="different vocabularies"):
        enc.encode_queries([Query("q", "protein")])


@pytest.mark.parametrize("preset", ["splade", "splade_doc", "unicoil", "deepimpact"])
def test_presets_compose_and_instantiate(preset, tiny_bert):
    from irbench.config import compose, instantiate

    cfg = compose([f"encoder={preset}", f"encoder.backbone={tiny_bert}", "encoder.device=cpu"])
    assert cfg.encoder.name == preset and cfg.encoder.batch_size >= 1
    enc = instantiate(cfg.encoder)
    assert isinstance(enc, SparseNeuralEncoder) and enc.query.backbone == str(tiny_bert)
    heads = {"splade": ("mlm", "mlm"), "splade_doc": ("binary", "mlm"),
             "unicoil": ("mlp", "mlp"), "deepimpact": ("binary", "mlp")}  # fmt: skip
    assert (enc.query.head, enc.doc.head) == heads[preset]
    m = encode_docs(enc, TEXTS[:2])
    q = enc.encode_queries([Query("q", "protein cancer")])
    assert m.shape == (2, 200) and q.shape == (1, 200) and q.nnz > 0


def test_run_end_to_end(tiny_bert, beir_dir, workdir):
    from typer.testing import CliRunner

    from irbench.cli.app import app

    args = [
        "run", "dataset=local", "dataset.name=tiny", f"dataset.path={beir_dir}", "k=20",
        "encoder=splade", f"encoder.backbone={tiny_bert}", "encoder.device=cpu",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((workdir / "runs" / "tiny" / "splade.numba" / "metrics.json").read_text())
    assert 0 <= metrics["nDCG@10"] <= 1


# -- splade-tiny (slow) ------------------------------------------------------------------------------
@pytest.mark.slow
def test_splade_tiny_matches_full_logits_on_scifact():
    if not (SPLADE_TINY / "config.json").is_file():
        pytest.skip(f"{SPLADE_TINY} is absent (../shared/models beside the checkout)")
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"{SCIFACT} is absent (../shared/data beside the checkout)")
    with open(SCIFACT / "corpus.jsonl") as f:
        rows = [json.loads(next(f)) for _ in range(12)]
    docs = [Doc(r["_id"], r["text"], r["title"]) for r in rows]
    texts = [d.full_text() for d in docs]
    enc = SparseNeuralEncoder(backbone=str(SPLADE_TINY), device="cpu", batch_size=5)
    got = sp.vstack(list(enc.encode_corpus(docs)), format="csr")
    assert_canonical(got)
    expected = naive_vectors(SPLADE_TINY, texts)
    assert np.abs(got.toarray() - expected).max() < 1e-4
    avg_nnz = got.nnz / got.shape[0]
    assert 50 < avg_nnz < 1000
    q = enc.encode_queries([Query("1", "0-dimensional biomaterials show inductive properties.")])
    assert 5 < q.nnz < 200
