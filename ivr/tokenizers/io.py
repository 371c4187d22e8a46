"""Build, save and load byte-level tokenizers in a form both ``tokenizers`` and ``transformers`` read."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import Model

from ivr.atomic import atomic_dir, read_json_object
from ivr.paths import TOKENIZER_FILE
from ivr.stamps import file_sha256
from ivr.tokenizers.special import (
    CHAT_TEMPLATE_FILE, CONFIG_FILES, ENDOFTEXT, GPT2_ROLES, ROLES, UNSET_LENGTH, SpecialTokens, config_extra_tokens,
    config_named_tokens, config_roles, special_tokens, special_tokens_of,
)

log = logging.getLogger(__name__)

METADATA_FILE = "ivr_metadata.json"


def byte_level_tokenizer(model: Model) -> Tokenizer:
    """Wrap a tokenizer model in GPT-2's byte-level pre-tokenizer, decoder and post-processor, with GPT-2's one
    added token ``<|endoftext|>`` (the packaged GPT-2 vocabulary and GPT-2 stand-ins are built this way)."""
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([ENDOFTEXT])
    return tok


def pre_tokens(tok: Tokenizer, text: str) -> list[str]:
    """The byte-level pre-tokens ``tok`` cuts ``text`` into, through its normalizer when it has one (the
    distilled tokenizer's maps the text to byte-level characters before its pre-tokenizer cuts it)."""
    if tok.normalizer is not None:
        text = tok.normalizer.normalize_str(text)
    return [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)]


def pretoken_bounds(word_ids: Sequence[int]) -> np.ndarray:
    """Where an encoding's pre-tokens start, then its length: tokens ``b[k]:b[k+1]`` are the segmentation of its
    ``k``-th pre-token (``Encoding.word_ids``, without the None of tokens a post-processor adds)."""
    words = np.asarray(word_ids, dtype=np.int64)
    if not len(words):
        return np.zeros(1, dtype=np.int64)
    return np.concatenate(([0], np.flatnonzero(np.diff(words)) + 1, [len(words)]))


def added_token_ids(tokenizer) -> list[int]:
    """The ids of ``tokenizer``'s added tokens that its encoding matches in text: all of them, but the special
    ones where text that spells them is cut as text (``encode_special_tokens``)."""
    return [i for i, t in tokenizer.get_added_tokens_decoder().items()
            if not (t.special and tokenizer.encode_special_tokens)]


def groups_are_pre_tokens(ids: Sequence[int], word_ids: Sequence[int | None], added_ids: frozenset[int]) -> bool:
    """Whether an encoding's tokens, grouped by ``word_ids``, are the segmentations of the text's pre-tokens: not
    where it holds an added token (``added_ids``: ``added_token_ids`` of the tokenizer), which the pre-tokenizer
    alone would cut as text."""
    return None not in word_ids and added_ids.isdisjoint(ids)


def encoded_pre_tokens(encoding: Encoding, added_ids: frozenset[int]) -> list[str] | None:
    """The byte-level pre-tokens a byte-level tokenizer cut a text into, spelled by the encoding's tokens (what
    ``pre_tokens`` gives, without cutting the text again); None where ``groups_are_pre_tokens`` says no."""
    words = encoding.word_ids
    if not groups_are_pre_tokens(encoding.ids, words, added_ids):
        return None
    tokens, bounds = encoding.tokens, pretoken_bounds(words).tolist()
    return ["".join(tokens[a:b]) for a, b in zip(bounds, bounds[1:])]


def save_tokenizer_dir(
    tokenizer: Tokenizer, target: str | Path, metadata: dict, special: SpecialTokens | None = None
) -> Path:
    """Write ``tokenizer.json``, the transformers config files and ``ivr_metadata.json`` atomically.

    ``tokenizer_config.json`` names the source's bos/eos/pad/unk tokens (``special``; without it, GPT-2's
    layout: ``special_tokens_of``), which must sit at the same ids in ``tokenizer``; ``ivr_metadata.json``
    records them under ``special``."""
    from transformers import PreTrainedTokenizerFast

    target = Path(target)
    special = special or special_tokens_of(tokenizer)
    added = {i: t.content for i, t in tokenizer.get_added_tokens_decoder().items()}
    if added != special.added:
        differ = sorted(set(added.items()) ^ set(special.added.items()))[:10]
        raise ValueError(f"saving {target}: the added tokens are not the source's at the same ids: {differ}")
    # each role by the text the source names it with: id_to_token would give the normalized form of an added token
    # matched after normalization, which transformers would add again as a new token
    roles = {f"{role}_token": text for role, text in special.role_texts}
    with atomic_dir(target) as tmp:
        extra = {"additional_special_tokens": list(special.extra)} if special.extra else {}
        extra.update({name: text for name, text, _ in special.named})  # transformers saves them under their names
        extra.update({key: side for key in ("padding_side", "truncation_side")
                      if (side := getattr(special, key)) is not None})
        fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **roles, **extra)
        if special.model_max_length is not None:
            fast.model_max_length = special.model_max_length
        if special.chat_template is not None:
            fast.chat_template = special.chat_template
        fast.save_pretrained(str(tmp))
        _name_the_class_both_versions_read(tmp / "tokenizer_config.json")
        # save_pretrained may re-serialise; keep the exact tokenizer we built
        tokenizer.save(str(tmp / TOKENIZER_FILE))
        meta = dict(metadata)
        meta["special"] = special.to_json()
        meta["tokenizer_sha256"] = file_sha256(tmp / TOKENIZER_FILE)
        # the special tokens' roles and the context length live in the configs, the chat template beside them: an
        # edit is noticed like one of tokenizer.json
        meta["config_sha256"] = {name: file_sha256(tmp / name) for name in (*CONFIG_FILES, CHAT_TEMPLATE_FILE)
                                 if (tmp / name).is_file()}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


# transformers 5 saves its fast tokenizer as "TokenizersBackend", which transformers 4 refuses ("does not exist");
# both load this name as their tokenizer over tokenizer.json (5 as TokenizersBackend), with the same ids
TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def _name_the_class_both_versions_read(tokenizer_config: Path) -> None:
    settings = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    settings["tokenizer_class"] = TOKENIZER_CLASS
    tokenizer_config.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """The tokenizer saved in ``directory``, set to encode document text as text (``special_text_as_text``)."""
    return special_text_as_text(read_tokenizer_file(directory))


def read_tokenizer_file(
    directory: str | Path,
    hint: str = "run the stage that builds it again (`ivr prepare` rebuilds a changed or truncated artifact)",
    keep_padding: bool = False,
) -> Tokenizer:
    """``directory``'s ``tokenizer.json`` as saved, but whole: without the padding or truncation a file saved after
    a call with ``truncation=True`` carries, which would cut every document (``load_tokenizer`` for encoding
    documents). ``hint``: what to do about a file that cannot be read (an artifact is built again, a user's
    file replaced). ``keep_padding``: leave its padding and truncation, where transformers reads a pad token and
    the padding and truncation sides."""
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}: run the stage that builds it first (see `ivr prepare`)")
    try:
        tok = Tokenizer.from_file(str(path))
    # the library raises a bare Exception for a file it cannot parse, and a Rust panic (pyo3's PanicException, a
    # BaseException no module exports) for some options that contradict the vocabulary
    except BaseException as err:
        if not isinstance(err, Exception) and type(err).__name__ != "PanicException":
            raise
        raise ValueError(f"{path}: not a tokenizer file the tokenizers library can read ({err}); {hint}") from None
    if not keep_padding:
        tok.no_padding()
        tok.no_truncation()
    return tok


def read_vocabulary(directory: str | Path) -> dict[str, int]:
    """Piece → id of the tokenizer saved in ``directory``, added tokens included."""
    return _as_saved(directory).get_vocab(with_added_tokens=True)


def read_vocab_size(directory: str | Path) -> int:
    """How many ids the tokenizer saved in ``directory`` has, added tokens included (the model needs a row each)."""
    return _as_saved(directory).get_vocab_size(with_added_tokens=True)


def _as_saved(directory: str | Path) -> Tokenizer:
    """``read_tokenizer_file(directory, keep_padding=True)``, shared by every read of the same bytes in this
    process: a stage or command asks for a tokenizer's vocabulary and special tokens several times, and each read
    takes a tenth of a second or more (a distilled tokenizer's regex is compiled on loading). Callers only read
    from it; keyed by the file's content, so a file saved again is read again."""
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        return read_tokenizer_file(directory, keep_padding=True)  # the error it gives
    return _read_by_content(str(directory), file_sha256(path))


@functools.lru_cache(maxsize=3)  # the original, distilled and remapped tokenizers of one run
def _read_by_content(directory: str, content_sha256: str) -> Tokenizer:
    return read_tokenizer_file(directory, keep_padding=True)


def read_configs(directory: Path) -> dict[Path, dict]:
    """The tokenizer configs (``CONFIG_FILES``) of ``directory`` that exist, by path, each checked to be a JSON
    object."""
    configs = {}
    for name in CONFIG_FILES:
        config_path = directory / name
        if config_path.is_file():
            try:
                configs[config_path] = json.loads(config_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"{config_path}: not valid UTF-8 JSON: {err}") from None
            if not isinstance(configs[config_path], dict):
                raise ValueError(f"{config_path}: not a JSON object")
    return configs


ADDED_TOKEN_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")


def add_config_added_tokens(tok: Tokenizer, directory: str | Path) -> list[str]:
    """Make what ``tokenizer_config.json``'s ``added_tokens_decoder`` lists an added token of ``tok`` with its
    flags, as transformers does when it loads the directory: a vocabulary piece listed there is then matched whole
    in raw text (and protected from IVR), and its ``special`` flag is the config's. Returns the texts changed.
    An entry at another id than ``tok`` gives its text keeps ``tok``'s id, and one whose text ``tok`` lacks is
    left out, each with a warning."""
    path = Path(directory) / CONFIG_FILES[0]
    listed = read_configs(Path(directory)).get(path, {}).get("added_tokens_decoder") or {}
    if not isinstance(listed, dict):
        raise ValueError(f"{path}: added_tokens_decoder must map ids to tokens, got {type(listed).__name__}")
    current = tok.get_added_tokens_decoder()
    changed = []
    for key, spec in sorted(listed.items(), key=lambda item: str(item[0])):
        if not (str(key).isdigit() and isinstance(spec, dict) and isinstance(spec.get("content"), str)):
            raise ValueError(f"{path}: added_tokens_decoder[{key!r}] must be a token with its 'content' under its "
                             f"id, got {spec!r}")
        token_id, content = int(key), spec["content"]
        flags = {flag: bool(spec[flag]) for flag in ADDED_TOKEN_FLAGS if flag in spec}
        token = AddedToken(content, **flags)
        if token_id in current and repr(current[token_id]) == repr(token):
            continue
        vocab_id = tok.token_to_id(content)
        if vocab_id is None:  # transformers would give it a new id, which the model has no row for
            log.warning("%s: added_tokens_decoder lists %r (id %d), which %s does not hold; left out", path, content,
                        token_id, TOKENIZER_FILE)
            continue
        if vocab_id != token_id:
            log.warning("%s: added_tokens_decoder puts %r at id %d, but %s gives that text id %d, which it keeps "
                        "(as transformers does)", path, content, token_id, TOKENIZER_FILE, vocab_id)
        (tok.add_special_tokens if token.special else tok.add_tokens)([token])
        changed.append(content)
    return changed


def read_special_tokens(tokenizer_dir: str | Path, tok: Tokenizer | None = None) -> SpecialTokens:
    """The special tokens of the tokenizer directory ``tokenizer_dir``: added tokens from ``tokenizer.json``, roles
    from ``tokenizer_config.json`` and ``special_tokens_map.json`` as ``transformers`` reads them (the map's replace
    the config's, unless the config lists ``added_tokens_decoder``). Where neither file names a role, GPT-2's
    layout if ``<|endoftext|>`` is the one added token (GPT-2's Hub config holds ``model_max_length`` alone); a
    role still unnamed takes the default of the config's ``tokenizer_class`` (``class_default_roles``). ``tok``: the directory's tokenizer as already read (with its padding and truncation), in place of reading
    it again."""
    directory = Path(tokenizer_dir)
    tok = _as_saved(directory) if tok is None else tok
    # transformers takes a pad token and side from tokenizer.json's padding where the configs name none, and the
    # truncation side from its truncation
    padding, truncation = tok.padding or {}, tok.truncation or {}
    configs = read_configs(directory)
    if not configs:
        special = special_tokens_of(tok, str(directory / TOKENIZER_FILE))  # GPT-2's layout, else an error
        if not padding and not truncation:
            return special
    config, mapped = (configs.get(directory / name, {}) for name in CONFIG_FILES)
    config_file, map_file = (directory / name for name in CONFIG_FILES)
    roles = config_roles(config, str(config_file))
    # as transformers reads them: the map's roles (and further special tokens) replace the config's, unless the
    # config lists the added tokens
    from_map = "added_tokens_decoder" not in config
    if from_map:
        roles.update({role: value for role, value in config_roles(mapped, str(map_file)).items()
                      if f"{role}_token" in mapped})
    # a key present with null names no token, as transformers reads it
    unnamed = [role for role in ROLES if f"{role}_token" not in config and not (from_map and f"{role}_token" in mapped)]
    if not any(roles.values()) and {t.content for t in tok.get_added_tokens_decoder().values()} == {ENDOFTEXT}:
        roles = dict(GPT2_ROLES)
    if "pad" in unnamed and padding.get("pad_token"):
        if tok.token_to_id(padding["pad_token"]) is not None:
            roles["pad"] = padding["pad_token"]
        else:  # tokenizers' default ``[PAD]`` of a file saved after a padded call: no id, no row in the model
            log.warning("%s: the padding's pad token %r is not in the vocabulary; no pad token taken from it",
                        directory / TOKENIZER_FILE, padding["pad_token"])
    unset = [role for role in unnamed if roles.get(role) is None]
    roles.update(class_default_roles(directory, config.get("tokenizer_class"), tok, unset))
    first = next(iter(configs.values()), {})
    sides = {key: first[key] for key in ("padding_side", "truncation_side") if first.get(key) is not None}
    if padding and "padding_side" not in sides:
        sides["padding_side"] = padding["direction"].lower()
    if truncation and "truncation_side" not in sides:
        sides["truncation_side"] = truncation["direction"].lower()
    length = first.get("model_max_length")
    # transformers writes int(1e30) for "no limit known"
    length = length if isinstance(length, int) and length < UNSET_LENGTH else None
    extra = config_extra_tokens(config, str(config_file)) or (config_extra_tokens(mapped, str(map_file)) if from_map
                                                              else ())
    named = config_named_tokens(config, str(config_file))
    if from_map:
        named.update(config_named_tokens(mapped, str(map_file)))
    where = " and ".join(map(str, configs or [directory / TOKENIZER_FILE]))
    return special_tokens(tok, roles, length, where, read_chat_template(directory, first), extra, sides, named)


# the classes transformers loads as the bare tokenizer over tokenizer.json, which has no default tokens
GENERIC_CLASSES = frozenset({TOKENIZER_CLASS, "TokenizersBackend"})
MODEL_CONFIG_FILE = "config.json"


def class_default_roles(directory: Path, class_name: object, tok: Tokenizer, roles: Sequence[str]) -> dict[str, str]:
    """The tokens that ``transformers`` gives ``roles`` where the configs name none: the defaults of the class
    ``tokenizer_config.json`` names (``GPT2Tokenizer``: bos, eos and unk ``<|endoftext|>``), or else the class of
    ``config.json``'s ``model_type``, as loading the
    directory with ``AutoTokenizer`` gives them. A default the vocabulary lacks (transformers would add it at a new
    id, without a row in the model) is left out with a warning, and so is every default where transformers cannot
    load the directory."""
    # without a class, transformers picks one by config.json's model_type (gpt2: GPT2Tokenizer)
    named = isinstance(class_name, str) or class_name is None and (directory / MODEL_CONFIG_FILE).is_file()
    if not roles or not named or class_name in GENERIC_CLASSES:
        return {}
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(str(directory))
    except Exception as err:  # a class this transformers lacks, a slow-only class, files it refuses
        log.warning("%s: transformers cannot load this directory as its tokenizer_class %r (%s: %s), so the "
                    "defaults that class gives %s are not known; none taken", directory, class_name,
                    type(err).__name__, err, ", ".join(f"{role}_token" for role in roles))
        return {}
    found = {role: str(text) for role in roles if (text := getattr(loaded, f"{role}_token", None)) is not None}
    missing = {role: text for role, text in found.items() if tok.token_to_id(text) is None}
    if missing:
        log.warning("%s: tokenizer_class %r defaults %s, which the vocabulary lacks; left out", directory,
                    class_name, ", ".join(f"{role}_token to {text!r}" for role, text in missing.items()))
    return {role: text for role, text in found.items() if role not in missing}


def read_chat_template(directory: Path, config: dict) -> str | None:
    """The chat template of a tokenizer directory: ``chat_template.jinja``, else the config's ``chat_template``
    string; ``None`` without one. A list of named templates is refused: no derived file could carry it as read."""
    named = sorted(p.stem for p in (directory / "additional_chat_templates").glob("*.jinja"))
    if named:  # transformers' named templates: derived directories carry the one default template only
        log.warning("%s: the named chat templates %s are not carried into the tokenizers ivr writes; only the "
                    "default template is", directory / "additional_chat_templates", ", ".join(named))
    path = directory / CHAT_TEMPLATE_FILE
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not valid UTF-8 ({err})") from None
    template = config.get("chat_template")
    if template is not None and not isinstance(template, str):
        raise ValueError(f"{directory / CONFIG_FILES[0]}: chat_template is a {type(template).__name__}; only one "
                         "template (a string) is supported")
    return template


def special_text_as_text(tok: Tokenizer) -> Tokenizer:
    """Make ``tok`` encode a special token's text found in a document (``<|endoftext|>`` written in a file) as
    plain text, not as the special id (transformers' ``split_special_tokens``), and return it.

    Documents are text: only packing puts the separator between them, as an id. The flag is not saved in
    ``tokenizer.json``, so every tokenizer the pipeline encodes documents with goes through here (saved
    directories keep the usual behaviour for chat templates)."""
    tok.encode_special_tokens = True
    return tok


def read_metadata(directory: str | Path, required: bool = False) -> dict:
    """A tokenizer directory's ``ivr_metadata.json``; ``{}`` where it has none, unless ``required``."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"no {METADATA_FILE} in {directory}: not a tokenizer directory that ivr wrote")
        return {}
    try:
        return read_json_object(path)
    except ValueError as err:
        raise ValueError(f"{err}; run the stage that builds it again") from None
