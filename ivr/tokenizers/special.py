"""A tokenizer's special tokens: its added tokens with their ids and the ids its config names bos, eos, pad and
unk, read from the tokenizer directory (``ivr.tokenizers.io.read_special_tokens``), never assumed.

``tokenizer.json`` holds the added tokens but not their roles; the roles come from ``tokenizer_config.json``
and ``special_tokens_map.json``, as ``transformers`` reads them. The one exception is a tokenizer whose only
added token is ``<|endoftext|>`` and whose configs name no role: GPT-2's layout, where that token is bos, eos
and unk (what ``transformers``' GPT-2 tokenizer assumes; GPT-2's Hub config holds ``model_max_length`` alone).
A role the configs leave unnamed takes the default of the ``tokenizer_class`` they name, as ``transformers``
gives it (``GPT2Tokenizer``'s bos, eos and unk are ``<|endoftext|>`` beside any other added tokens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tokenizers import Tokenizer


log = logging.getLogger(__name__)

ENDOFTEXT = "<|endoftext|>"
ROLES = ("bos", "eos", "pad", "unk")
CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
# where transformers 5 writes a tokenizer's chat template (older versions: tokenizer_config.json's chat_template)
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# GPT-2's context, which its tokenizer_config.json states as model_max_length
GPT2_MODEL_MAX_LENGTH = 1024
# GPT-2's roles: its one added token is bos, eos and unk
GPT2_ROLES = {"bos": ENDOFTEXT, "eos": ENDOFTEXT, "unk": ENDOFTEXT}
UNSET_LENGTH = 10**20


@dataclass(frozen=True)
class SpecialTokens:
    """The special tokens of a tokenizer: what IVR never frees, and what every tokenizer it derives carries at
    the same ids."""

    added: dict[int, str]
    """Every added token (special or not) by id: matched in raw text before the model sees it."""
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None
    separator_id: int
    """The id put between packed documents: ``<|endoftext|>`` where the vocabulary has it, else eos. GPT-2 and
    SmolLM2 were pretrained on documents joined by ``<|endoftext|>``; a chat model's eos (SmolLM2-Instruct's
    ``<|im_end|>``) ends a turn, not a document."""
    model_max_length: int | None = None
    """``transformers``' ``model_max_length`` from the source's config, repeated in every derived directory."""
    chat_template: str | None = None
    """The source's chat template (Jinja), carried unchanged into every derived directory and the export: it names
    special tokens by their text, and IVR never moves them."""
    extra: tuple[str, ...] = ()
    """The further special tokens the source's config lists (``additional_special_tokens``, transformers 5's
    ``extra_special_tokens``), each an added token: ``all_special_ids`` of every derived tokenizer holds them."""
    padding_side: str | None = None
    """Where transformers pads and truncates the source's batches (its config's ``padding_side`` and
    ``truncation_side``, else the padding and truncation of its ``tokenizer.json``), repeated in every derived
    directory and the export; ``None`` where the source leaves transformers' default."""
    truncation_side: str | None = None
    role_texts: tuple[tuple[str, str], ...] = ()
    """Each named role's token text (``("pad", "<|im_end|>")``), a vocabulary piece's too."""
    named: tuple[tuple[str, str, int], ...] = ()
    """The further tokens the config names (``("mask_token", "<mask>", 4)``: name, text, id), which transformers
    gives as attributes: any other ``*_token`` key, and transformers 5's mapping ``extra_special_tokens``."""

    def role_ids(self) -> dict[str, int]:
        """The ids the config names, by role (``eos``: 2), roles it leaves unnamed left out."""
        return {role: i for role in ROLES if (i := getattr(self, f"{role}_id")) is not None}

    def protected_ids(self) -> set[int]:
        """Ids IVR never frees: every added token, every id named by a role, and the document separator (a plain
        vocabulary piece in some BPEs, whose eos is another token)."""
        return set(self.added) | set(self.role_ids().values()) | {self.separator_id} | {i for *_, i in self.named}

    def to_json(self) -> dict:
        return {
            "added": {str(i): t for i, t in sorted(self.added.items())},
            **{f"{role}_token": text for role, text in self.role_texts},
            **{f"{role}_id": getattr(self, f"{role}_id") for role in ROLES},
            "separator_id": self.separator_id,
            "model_max_length": self.model_max_length,
            "chat_template": self.chat_template is not None,
            "extra_special_tokens": list(self.extra),
            "named_tokens": {name: text for name, text, _ in self.named},
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
        }


def special_tokens(
    tok: Tokenizer, roles: dict[str, str | None], model_max_length: int | None = None, where: str = "the tokenizer",
    chat_template: str | None = None, extra: tuple[str, ...] = (), sides: dict[str, str] | None = None,
    named: dict[str, str] | None = None,
) -> SpecialTokens:
    """``tok``'s added tokens and the roles ``roles`` names by token (``{"eos": "<|im_end|>"}``); each named token
    must be in ``tok``'s vocabulary, and each of ``extra`` (further special tokens) one of its added tokens.
    ``sides``: ``padding_side`` and ``truncation_side``, ``"left"`` or ``"right"`` where given. ``named``: further
    tokens by attribute name (``{"mask_token": "<mask>"}``); one the vocabulary lacks is left out with a warning."""
    added = {i: t.content for i, t in sorted(tok.get_added_tokens_decoder().items())}
    ids: dict[str, int | None] = {}
    for role in ROLES:
        content = roles.get(role)
        ids[role] = None if content is None else tok.token_to_id(content)
        if content is not None and ids[role] is None:
            raise ValueError(f"{where}: {role}_token {content!r} is not in the tokenizer's vocabulary "
                             f"(its added tokens: {sorted(added.values())[:20]})")
    separator = tok.token_to_id(ENDOFTEXT)
    separator = ids["eos"] if separator is None else separator
    if separator is None:
        raise ValueError(f"{where}: no document separator: the tokenizer has no {ENDOFTEXT} and names no eos_token")
    named_ids = {name: tok.token_to_id(text) for name, text in (named or {}).items()}
    unknown = [f"{name} {named[name]!r}" for name, i in named_ids.items() if i is None]
    if unknown:  # as transformers would: a new id, without a row in the model; a config template's leftover
        log.warning("%s: %s not in the tokenizer's vocabulary: left out", where, ", ".join(unknown[:20]))
    named_ids = {name: i for name, i in named_ids.items() if i is not None}
    missing = [t for t in extra if t not in added.values()]
    if missing:
        raise ValueError(f"{where}: the further special tokens {missing[:20]} are not added tokens of the tokenizer")
    sides = sides or {}
    for key, side in sides.items():
        if side not in ("left", "right"):
            raise ValueError(f"{where}: {key} must be 'left' or 'right', got {side!r}")
    return SpecialTokens(added, ids["bos"], ids["eos"], ids["pad"], ids["unk"], separator, model_max_length,
                         chat_template, tuple(extra), sides.get("padding_side"), sides.get("truncation_side"),
                         tuple((role, roles[role]) for role in ROLES if ids[role] is not None),
                         tuple((name, named[name], i) for name, i in sorted(named_ids.items())))


def special_tokens_of(tok: Tokenizer, where: str = "the tokenizer", model_max_length: int | None = None) -> SpecialTokens:
    """The special tokens of a tokenizer that comes without a config: GPT-2's layout only (``<|endoftext|>`` its
    one added token, which is then bos, eos and unk); any other layout needs its config (``read_special_tokens``).
    ``model_max_length``: where known (GPT-2's packaged vocabulary stands for its Hub tokenizer, 1024); otherwise
    none is made up, and an export takes the model's context."""
    added = {t.content for t in tok.get_added_tokens_decoder().values()}
    if added != {ENDOFTEXT}:
        raise ValueError(f"{where}: tokenizer.json does not say which of its added tokens ({sorted(added)[:20]}) are "
                         "bos, eos, pad and unk: put a tokenizer_config.json naming bos_token, eos_token, pad_token "
                         "and unk_token beside it")
    return special_tokens(tok, GPT2_ROLES, model_max_length, where)


def config_roles(config: dict, where: str = "the tokenizer config") -> dict[str, str | None]:
    """The role tokens of a ``tokenizer_config.json`` or ``special_tokens_map.json`` (a string, or an added
    token written as a mapping with ``content``); anything else is an error naming ``where`` and the key."""
    out: dict[str, str | None] = {}
    for role in ROLES:
        value = config.get(f"{role}_token")
        out[role] = value.get("content") if isinstance(value, dict) else value
        if (value is not None and out[role] is None) or (out[role] is not None and not isinstance(out[role], str)):
            raise ValueError(f"{where}: {role}_token must be a token's text (or a mapping with its 'content'), got "
                             f"{value!r}")
    return out


def config_extra_tokens(config: dict, where: str = "the tokenizer config") -> tuple[str, ...]:
    """The further special tokens a config lists without a name transformers could write back:
    ``additional_special_tokens`` and ``extra_special_tokens``, each a token's text or a mapping with its
    ``content``; of a mapping of names to tokens, those whose name does not end in ``_token`` (transformers would
    save them under a key it does not read back; the others are ``config_named_tokens``')."""
    out = []
    for key in ("additional_special_tokens", "extra_special_tokens"):  # transformers 4 may have both
        listed = config.get(key) or []
        values = [v for k, v in listed.items() if not k.endswith("_token")] if isinstance(listed, dict) else listed
        texts = [v.get("content") if isinstance(v, dict) else v for v in values] if isinstance(values, list) else [None]
        if not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{where}: {key} must list tokens' texts, got {listed!r}")
        out += texts
    return tuple(dict.fromkeys(out))


def config_named_tokens(config: dict, where: str = "the tokenizer config") -> dict[str, str]:
    """The further tokens a config names, as transformers reads them into attributes: every ``*_token`` key but
    the roles (``mask_token``, ``image_token``) whose value is a token's text or a mapping with its ``content``
    (``add_bos_token: true`` is a switch, not a token), and those of an ``extra_special_tokens`` mapping whose
    name ends in ``_token``."""
    roles = {f"{role}_token" for role in ROLES}
    out = {key: value for key, value in config.items() if key.endswith("_token") and key not in roles
           and (isinstance(value, str) or isinstance(value, dict) and "content" in value)}
    mapped = config.get("extra_special_tokens")
    if isinstance(mapped, dict):
        out.update({key: value for key, value in mapped.items() if key.endswith("_token")})
    texts = {key: value.get("content") if isinstance(value, dict) else value for key, value in out.items()}
    bad = {key: out[key] for key, text in texts.items() if not isinstance(text, str)}
    if bad:
        raise ValueError(f"{where}: {', '.join(bad)} must be a token's text (or a mapping with its 'content'), got "
                         f"{bad!r}")
    return texts
