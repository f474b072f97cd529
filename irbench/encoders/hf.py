"""Hugging Face backbones for the neural encoders: loading, fingerprints, device and threads.

A *backbone* is a Hugging Face hub id (``naver/splade-cocondenser-ensembledistil``) or a local
folder (``../shared/models/splade-tiny``). Every failure to find or load one is a one-line
:class:`~irbench.errors.ConfigError` naming the config key and the fix. Set ``HF_HUB_OFFLINE=1``
to load hub ids from the local Hugging Face cache only.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

from irbench.errors import ConfigError

__all__ = [
    "is_local",
    "map_batches",
    "token_ids",
    "load_model",
    "load_tokenizer",
    "model_fingerprint",
    "resolve_device",
    "set_threads",
]

# files of a model folder that change what it computes (weights, config, tokenizer)
_MODEL_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".txt", ".model", ".npy")
log = logging.getLogger(__name__)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def is_local(backbone: str) -> bool:
    """A path (existing, or spelled like one: ``./x``, ``../x``, ``/x``, ``~/x``, ``a/b/c``)
    rather than a hub id (``name`` or ``org/name``)."""
    s = str(backbone)
    if Path(s).expanduser().exists():
        return True
    return not _HUB_ID.fullmatch(s)


def _check_backbone(backbone: Any, key: str) -> str:
    if not isinstance(backbone, str | os.PathLike) or not str(backbone).strip():
        raise ConfigError(
            f"{key}: expected a Hugging Face model id or a local folder, got {backbone!r}; "
            f"set {key}=org/name or {key}=path/to/model"
        )
    s = str(backbone)
    if is_local(s):
        path = Path(s).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"{key}: model folder '{s}' does not exist; pass an existing folder "
                f"({key}=path/to/model) or a Hugging Face model id"
            )
    return s


def _load_error(key: str, backbone: str, exc: Exception) -> ConfigError:
    detail = " ".join(str(exc).split())[:300]
    if is_local(backbone):
        fix = "check that the folder holds a Hugging Face model (config.json, weights, tokenizer)"
    else:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        fix = (
            "it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            if offline
            else "the download failed; check the id and your network, or "
        ) + f"pass a local folder ({key}=path/to/model)"
    return ConfigError(f"{key}: cannot load '{backbone}' ({type(exc).__name__}: {detail}); {fix}")


def load_tokenizer(backbone: str, key: str = "encoder.backbone") -> Any:
    """The backbone's tokenizer (a fast one when available)."""
    from transformers import AutoTokenizer

    backbone = _check_backbone(backbone, key)
    try:
        return AutoTokenizer.from_pretrained(
            str(Path(backbone).expanduser()) if is_local(backbone) else backbone
        )
    except (OSError, ValueError, KeyError) as exc:
        raise _load_error(key, backbone, exc) from None


def load_model(backbone: str, mlm: bool, key: str = "encoder.backbone") -> Any:
    """``AutoModelForMaskedLM`` (``mlm=True``) or ``AutoModel`` in eval mode, on the CPU.

    Transformers' load report is silenced; weights the checkpoint lacks (other than a pooler,
    which irbench never uses) are logged as one warning, since they are random."""
    from transformers import AutoModel, AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # irbench shows its own progress
    backbone = _check_backbone(backbone, key)
    cls = AutoModelForMaskedLM if mlm else AutoModel
    name = str(Path(backbone).expanduser()) if is_local(backbone) else backbone
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = cls.from_pretrained(name, output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise _load_error(key, backbone, exc) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(k for k in info.get("missing_keys", ()) if "pooler" not in k)
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        log.warning("%s: '%s' lacks %s; those weights are random (untrained)", key, backbone, shown)
    return model.eval()


# -- fingerprints -----------------------------------------------------------------------------------
def model_fingerprint(backbone: str, key: str = "encoder.backbone") -> str:
    """What identifies the weights: for a local folder ``sha256:<hex>`` over its model, config and
    tokenizer files (each file's hash memoised on its path and
    :func:`~irbench.data.fingerprint.file_stamp`: size, mtime, ctime, inode); for a hub id
    ``<id>@<commit>`` of the cached snapshot, or the bare id when it is not cached."""
    backbone = _check_backbone(backbone, key)
    if not is_local(backbone):
        return _hub_fingerprint(backbone)
    folder = Path(backbone).expanduser().resolve()
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _MODEL_SUFFIXES
    )
    from irbench.data.fingerprint import file_stamp

    stats = tuple((p.name, *file_stamp(p.stat()).values()) for p in files)
    return _folder_digest(str(folder), stats)


@functools.lru_cache(maxsize=64)
def _folder_digest(folder: str, stats: tuple[tuple[Any, ...], ...]) -> str:
    from irbench.data.fingerprint import file_fingerprint  # memo on the same file_stamp

    h = hashlib.sha256()
    for name, *_ in stats:
        h.update(f"{name}\0{file_fingerprint(Path(folder) / name)}\n".encode())
    return "sha256:" + h.hexdigest()


def _hub_fingerprint(repo_id: str) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an odd id or cache layout: fall back to the id
        hit = None
    if isinstance(hit, str):
        parts = Path(hit).parts
        if "snapshots" in parts:
            return f"{repo_id}@{parts[parts.index('snapshots') + 1]}"
    return repo_id


# -- device and threads -----------------------------------------------------------------------------
def resolve_device(device: str | None, key: str = "encoder.device") -> str:
    """``auto``/``null`` -> ``cuda`` when available, else ``cpu``; ``cpu``, ``cuda``, ``cuda:N``
    and ``mps`` are taken as given (``cuda`` without a GPU is an error)."""
    import torch

    d = "auto" if device in (None, "", "auto") else str(device)
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", d):
        raise ConfigError(f"{key}: unknown device {d!r}; use auto, cpu, cuda, cuda:N or mps")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}={d}: no CUDA device is visible; use {key}=cpu or {key}=auto")
    if d.startswith("cuda:") and int(d[5:]) >= torch.cuda.device_count():
        raise ConfigError(
            f"{key}={d}: only {torch.cuda.device_count()} CUDA devices are visible "
            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
        )
    if d == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"{key}=mps: this PyTorch has no usable MPS device; use {key}=cpu or auto"
        )
    return d


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; 0 or None leaves torch's default."""
    import torch

    if threads and int(threads) > 0 and torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))


def checkpoint_tensors(backbone: str, prefix: str) -> dict[str, Any] | None:
    """``{"weight": ..., "bias": ...}`` of the layer named ``prefix`` (any parent path, e.g.
    ``tok_proj`` matches ``tok_proj.weight`` and ``encoder.tok_proj.weight``) in the backbone's
    checkpoint, or None when the checkpoint has no such layer (or cannot be read)."""
    import json

    from transformers.utils import cached_file

    name = str(Path(backbone).expanduser()) if is_local(backbone) else backbone

    def find(filename: str) -> str | None:
        try:
            return cached_file(name, filename, _raise_exceptions_for_missing_entries=False)
        except (OSError, ValueError):
            return None

    def pick(keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for part in ("weight", "bias"):
            hits = sorted(
                k for k in keys if k == f"{prefix}.{part}" or k.endswith(f".{prefix}.{part}")
            )
            if hits:
                found[part] = hits[0]
        return found if "weight" in found else {}

    files: list[str] = []
    index = find("model.safetensors.index.json")
    if index:
        weight_map = json.loads(Path(index).read_text()).get("weight_map", {})
        keys = pick(list(weight_map))
        files = sorted({weight_map[k] for k in keys.values()})
        paths = [find(f) for f in files]
    else:
        paths = [find("model.safetensors")]
    paths = [p for p in paths if p]
    if paths:
        from safetensors import safe_open

        out: dict[str, Any] = {}
        for p in paths:
            with safe_open(p, framework="pt") as f:
                keys = pick(list(f.keys()))
                for part, key in keys.items():
                    out[part] = f.get_tensor(key)
        return out or None
    legacy = find("pytorch_model.bin")
    if legacy:
        import torch

        state = torch.load(legacy, map_location="cpu", weights_only=True)
        keys = pick(list(state))
        return {part: state[key] for part, key in keys.items()} or None
    return None


def map_batches(
    run: Any,
    batches: list[Any],
    device: str,
    progress: Any = None,
    sizes: list[int] | None = None,
) -> list[Any]:
    """``[run(batch, single_thread) for batch in batches]``, in order.

    On CPU, with torch set to T > 1 threads, ``min(T, len(batches))`` worker threads each run
    whole batches with single-threaded torch ops (``single_thread=True``: the worker calls
    ``torch.set_num_threads(1)``, a per-thread OpenMP setting). A transformer over a small
    model is many small ops; an OpenMP team meets at a barrier after each of them and loses
    most of its time as soon as another process shares the cores, independent workers do not.
    A single batch (one query) also runs single-threaded: on the shared 2-core machine one
    splade-tiny query took 17 ms this way and 270 ms with a 2-thread team. Elsewhere (GPU,
    one torch thread) the batches run one after the other in the calling thread.
    ``progress(n)`` is called with ``sizes[i]`` (default 1) after each batch, in order.
    """
    import torch

    sizes = sizes if sizes is not None else [1] * len(batches)
    threads = torch.get_num_threads()
    out: list[Any] = []
    if device != "cpu" or threads <= 1 or not batches:
        for batch, size in zip(batches, sizes, strict=True):
            out.append(run(batch, False))
            if progress is not None:
                progress(size)
        return out
    from concurrent.futures import ThreadPoolExecutor

    workers = min(threads, len(batches))
    try:
        torch.set_num_threads(1)  # MKL's setting is process-wide
        with ThreadPoolExecutor(workers, thread_name_prefix="irbench-encode") as pool:
            results = pool.map(lambda b: run(b, True), batches)
            for part, size in zip(results, sizes, strict=True):
                out.append(part)
                if progress is not None:
                    progress(size)
    finally:
        torch.set_num_threads(threads)
    return out


#: texts per tokenizer call in :func:`token_ids`
TOKENIZE_CHUNK = 256


def token_ids(tokenizer: Any, texts: list[str], max_length: int | None) -> list[Any]:
    """Token ids of each text (special tokens added, truncated at ``max_length``) as int32
    numpy arrays. Tokenizes ``TOKENIZE_CHUNK`` texts per call: a fast tokenizer's output keeps
    per-token strings and offsets, so one call over a 4096-doc window of scifact raised peak
    memory by about 270 MB, in chunks by 30 MB."""
    import warnings

    import numpy as np

    out: list[Any] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            enc = tokenizer(
                texts[start : start + TOKENIZE_CHUNK], truncation=max_length is not None,
                max_length=max_length, return_attention_mask=False, return_token_type_ids=False,
            )  # fmt: skip
            out.extend(np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"])
    return out
