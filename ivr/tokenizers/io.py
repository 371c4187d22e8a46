"""Build, save and load byte-level tokenizers in a form both ``tokenizers`` and ``transformers`` read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import Model

from ivr.atomic import atomic_dir
from ivr.tokenizers.byte_level import EOS_TOKEN

TOKENIZER_FILE = "tokenizer.json"
METADATA_FILE = "ivr_metadata.json"


def byte_level_tokenizer(model: Model) -> Tokenizer:
    """Wrap a tokenizer model in GPT-2's byte-level pre-tokenizer, decoder and post-processor."""
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([EOS_TOKEN])
    return tok


def pre_tokens(tok: Tokenizer, text: str) -> list[str]:
    """The byte-level pre-tokens ``tok`` cuts ``text`` into, through its normalizer when it has one (the
    distilled tokenizer's maps the text to byte-level characters before its pre-tokenizer cuts it)."""
    if tok.normalizer is not None:
        text = tok.normalizer.normalize_str(text)
    return [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)]


def save_tokenizer_dir(tokenizer: Tokenizer, target: str | Path, metadata: dict) -> Path:
    """Write ``tokenizer.json``, the transformers config files and ``ivr_metadata.json`` atomically."""
    from transformers import PreTrainedTokenizerFast

    target = Path(target)
    with atomic_dir(target) as tmp:
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, unk_token=EOS_TOKEN
        )
        fast.model_max_length = 1024
        fast.save_pretrained(str(tmp))
        # save_pretrained may re-serialise; keep the exact tokenizer we built
        tokenizer.save(str(tmp / TOKENIZER_FILE))
        meta = dict(metadata)
        meta["tokenizer_sha256"] = file_sha256(tmp / TOKENIZER_FILE)
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def load_tokenizer(directory: str | Path) -> Tokenizer:
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}: run the stage that builds it first (see `ivr prepare`)")
    return Tokenizer.from_file(str(path))


def read_metadata(directory: str | Path) -> dict:
    path = Path(directory) / METADATA_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
