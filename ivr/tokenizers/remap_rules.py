"""``remap_rules.yaml``: which ids In-place Vocabulary Reassignment hands to which new strings.

Remap writes the file (and reads a hand-edited one); alignment and the model read it back. Every reader
goes through ``validate_remap_rules``, so the ID contract is checked in one place: an id is freed at most
once; no added token (special or not), no id the tokenizer config names bos, eos, pad or unk, and no
single-byte token (every byte must stay encodable) is ever freed; a new string is a whole-character
byte-level piece held by one id only. ``id_contract`` checks a built tokenizer against the same contract. Errors name the file, the line
a rule starts on, its position (from 1) and its id, and list every bad rule at once.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tokenizers import Tokenizer

from ivr.atomic import write_text
from ivr.tokenizers.byte_level import char_to_byte, piece_to_bytes, readable, single_byte_pieces, text_to_piece
from ivr.tokenizers.candidates import Replacement
from ivr.tokenizers.io import pre_tokens
from ivr.tokenizers.pieces import single_pretoken, vocab_pieces
from ivr.tokenizers.special import ENDOFTEXT, SpecialTokens
from ivr.user_text import read_user_text

RULES_HEADER = """\
# In-place vocabulary reassignment rules. Each rule gives id `id` the string `new_text`, whose byte-level
# form is `new_token`. To change a rule's string, edit `new_text` and delete its `new_token` (the rule is
# then marked edited by hand, its estimated saving dropped). `gpt2_ids` are the GPT-2 ids the new string used
# to be split into; they are recomputed on every build. To rebuild with edited rules, copy this file out of the
# artifact tree (remap rewrites it), edit the copy and set data.remap.remap_rules_path to it.
"""
# a complete rule, as remap writes it; a rule being built needs only `id` and `new_text` or `new_token`
COMPLETE_KEYS = ("id", "old_token", "new_token", "gpt2_ids")
# every key remap writes; any other is a misspelling (`nwe_text`) whose edit would silently not apply
RULE_KEYS = frozenset((*COMPLETE_KEYS, "old_text", "new_text", "reason", "estimated_saving_pct"))


class _RulesLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys: in a hand-edited rule (a second ``new_text``) that silently drops
    one, so a repeated key is an error naming its line."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            # a list or mapping as a key cannot even be compared with the others
            key = self.construct_object(key_node, deep=deep) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                got = repr(key) if isinstance(key_node, yaml.ScalarNode) else f"a {key_node.id}"
                raise yaml.constructor.ConstructorError(None, None, f"a rule's key must be a name, got {got}",
                                                        key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} repeated", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


class _RulesDumper(yaml.SafeDumper):
    """PyYAML writes NEL (U+0085) raw inside single quotes, where reading folds it into a space: such a
    string goes in double quotes, which escape it."""


_RulesDumper.add_representer(
    str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style='"' if "\x85" in s else None)
)


class RemapRuleError(ValueError):
    """One or more invalid rules; the message names each by its file, position and id."""


@dataclass(frozen=True)
class RemapRule:
    """Id ``id`` stops meaning ``old_token`` and starts meaning ``new_token`` (both byte-level pieces).

    ``gpt2_ids`` are the ids ``new_token`` was split into before (alignment starts its row from theirs).
    ``where`` names the rule's file, position and id for error messages; it is neither compared nor written.
    """

    id: int
    old_token: str
    new_token: str
    gpt2_ids: tuple[int, ...]
    reason: str = ""
    where: str = field(default="", compare=False, repr=False)
    estimated_saving_pct: float = 0.0

    @property
    def old_text(self) -> str:
        return readable(self.old_token)

    @property
    def new_text(self) -> str:
        return readable(self.new_token)


def read_remap_rules(
    path: str | Path, tokenizer: Tokenizer | None = None, special: SpecialTokens | None = None
) -> list[RemapRule]:
    """The rules of ``path``, validated (see ``validate_remap_rules``).

    The file holds a list of rules, or a mapping whose ``rules`` key holds that list. Without ``tokenizer``
    every rule must be complete, as remap writes it; with the tokenizer being remapped, a hand-edited rule
    needs only ``id`` and ``new_text`` or ``new_token``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: remap rules not found (data.remap.remap_rules_path)")
    text = read_user_text(path, "data.remap.remap_rules_path")
    loader = _RulesLoader(text)
    try:  # what yaml.load does, keeping the node: it holds the line each rule starts on
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:  # PyYAML builds nested collections recursively
        raise RemapRuleError(f"{path}: not valid YAML: collections nested too deeply") from None
    except yaml.YAMLError as err:
        # one line naming the file's own line and column, not the parser's "<unicode string>"
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RemapRuleError(f"{where}: not valid YAML: {what}") from None
    finally:
        loader.dispose()
    if isinstance(data, dict) and (unknown := sorted(map(str, set(data) - {"rules"}))):
        raise RemapRuleError(f"{path}: unknown top-level key(s) {unknown}; the rules go under `rules:`")
    entries = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise RemapRuleError(f"{path}: expected a list of rules under `rules:`")
    return validate_remap_rules(entries, str(path), tokenizer, special, _rule_lines(node))


def _rule_lines(node: yaml.Node) -> list[int]:
    """The line (from 1) each rule of a rules file starts on, in order, from the file's composed ``node``."""
    if isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if k.value == "rules"), None)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def write_remap_rules(path: str | Path, rules: Sequence[RemapRule]) -> None:
    """Write ``rules`` atomically, under ``RULES_HEADER``, with the readable forms beside the pieces."""
    rows = [
        {
            "id": r.id,
            "old_token": r.old_token,
            "old_text": r.old_text,
            "new_token": r.new_token,
            "new_text": r.new_text,
            "gpt2_ids": list(r.gpt2_ids),
            "reason": r.reason,
            "estimated_saving_pct": r.estimated_saving_pct,
        }
        for r in rules
    ]
    body = yaml.dump(
        {"rules": rows}, Dumper=_RulesDumper, allow_unicode=True, sort_keys=False, width=120, default_flow_style=None
    )
    write_text(path, RULES_HEADER + body)


def rules_from_candidates(replacements: Iterable[Replacement]) -> list[dict]:
    """Rule entries (for ``validate_remap_rules`` with the tokenizer) from selection's candidates."""
    return [
        {
            "id": r.freed_id,
            "old_token": r.freed_token,
            "new_token": r.new_token,
            "reason": f"{r.reason} #{r.rank}: {r.domain_count} occurrences in the domain, "
            f"saves ~{r.estimated_saving} tokens; old token used {r.freed_domain_count}x in the domain, "
            f"{r.freed_general_per_million:.3g}/M in general text",
            "estimated_saving_pct": r.estimated_saving_pct,
        }
        for r in replacements
    ]


class _Invalid(Exception):
    """What is wrong with one rule; ``validate_remap_rules`` prefixes where it is."""


def validate_remap_rules(
    entries: Sequence[object], source: str, tokenizer: Tokenizer | None = None, special: SpecialTokens | None = None,
    lines: Sequence[int] = (),
) -> list[RemapRule]:
    """Check rule entries (mappings, as read from YAML) and return them as rules; raise one ``RemapRuleError``
    listing every bad rule by ``source``, position and id.

    Without ``tokenizer`` each rule must be complete (``COMPLETE_KEYS``) and is checked on its own and
    against the others. With the tokenizer being remapped, ids must lie in its vocabulary, ``old_token``
    (optional) must be the piece at that id, a new string must be neither in the vocabulary nor cut by the
    pre-tokenizer, and ``gpt2_ids`` are recomputed from the tokenizer. ``special`` (the source's special tokens)
    names the ids no rule may free; without it, the tokenizer's added tokens (and ``<|endoftext|>`` by name).
    ``lines``: the line each entry starts on in ``source``, named beside its position where given.
    """
    checker = _Checker(source, tokenizer, special, lines)
    rules = [rule for n, entry in enumerate(entries, 1) if (rule := checker.check(n, entry)) is not None]
    if checker.errors:
        raise RemapRuleError(f"{len(checker.errors)} invalid remap rule(s):\n" + "\n".join(checker.errors))
    return rules


def check_ids_in_range(rules: Sequence[RemapRule], vocab_size: int) -> None:
    """Every rule's id and ``gpt2_ids`` index a vocabulary (or embedding matrix) of ``vocab_size`` rows."""
    for rule in rules:
        bad = [i for i in (rule.id, *rule.gpt2_ids) if not 0 <= i < vocab_size]
        if bad:
            raise RemapRuleError(f"{rule.where}: ids {bad} outside the vocabulary [0, {vocab_size})")


def _is_int(value: object) -> bool:
    # bool is an int subclass; a YAML `yes` must not pass as id 1
    return isinstance(value, int) and not isinstance(value, bool)


class _Checker:
    """The checks of ``validate_remap_rules``, with what earlier rules claimed (ids, new strings)."""

    def __init__(self, source: str, tokenizer: Tokenizer | None, special: SpecialTokens | None,
                 lines: Sequence[int] = ()):
        self.source, self.tokenizer, self.lines = source, tokenizer, lines
        added = special.added if special else {
            i: t.content for i, t in (tokenizer.get_added_tokens_decoder() if tokenizer else {}).items()}
        self.protected = {i: ["an added token"] for i in added}
        for role, i in (special.role_ids() if special else {}).items():
            self.protected.setdefault(i, []).append(f"the {role} token")
        if special is not None:
            self.protected.setdefault(special.separator_id, []).append("the document separator")
            for name, _, i in special.named:
                self.protected.setdefault(i, []).append(f"the config's {name}")
        self.protected_tokens = set(added.values()) | {ENDOFTEXT}
        self.pieces = vocab_pieces(tokenizer) if tokenizer is not None else []
        self.vocab = {p: i for i, p in enumerate(self.pieces)}
        self.single_bytes = single_byte_pieces()
        self.alphabet = set(char_to_byte())
        self.errors: list[str] = []
        self.seen_ids: dict[int, int] = {}
        self.seen_new: dict[str, int] = {}

    def check(self, n: int, entry: object) -> RemapRule | None:
        where = f"{self.source}{f':{self.lines[n - 1]}' if n <= len(self.lines) else ''}: rule {n}"
        if isinstance(entry, Mapping) and "id" in entry:
            where += f" (id {entry['id']})"
        try:
            return self._rule(n, entry, where)
        except _Invalid as err:
            self.errors.append(f"{where}: {err}")
            return None

    def _rule(self, n: int, entry: object, where: str) -> RemapRule:
        if not isinstance(entry, Mapping):
            raise _Invalid(f"expected a mapping, got {type(entry).__name__}")
        if unknown := sorted(map(str, set(entry) - RULE_KEYS)):
            raise _Invalid(f"unknown key(s) {unknown}; a rule's keys are {sorted(RULE_KEYS)}")
        missing = [k for k in (COMPLETE_KEYS if self.tokenizer is None else ("id",)) if k not in entry]
        if missing:
            raise _Invalid(f"missing {missing}")
        rid = entry["id"]
        if not _is_int(rid):
            raise _Invalid(f"id must be an int, got {rid!r}")
        given_old = entry.get("old_token")
        old = self._old_token(rid, given_old)
        if rid in self.protected:
            raise _Invalid(f"{readable(old)} cannot be reassigned: id {rid} is {' and '.join(self.protected[rid])}")
        if old in self.protected_tokens:  # a complete rule whose old_token names a protected token elsewhere
            why = "the document separator" if old == ENDOFTEXT else "an added token"
            raise _Invalid(f"old_token {readable(old)} is {why}, not a token this rule may free at id {rid}")
        if old in self.single_bytes:
            raise _Invalid(f"single-byte token {readable(old)!r} cannot be reassigned")
        if rid in self.seen_ids:
            raise _Invalid(f"id already reassigned by rule {self.seen_ids[rid]}")
        self.seen_ids[rid] = n
        if self.tokenizer is not None and given_old not in (None, old):
            raise _Invalid(f"old_token {given_old!r} is not the distilled token {old!r} at that id")
        # written beside old_token, and edited like new_text: a rule must free the token it names
        given_text = entry.get("old_text")
        if self.tokenizer is not None and given_text is not None and given_text != readable(old):
            raise _Invalid(f"old_text {given_text!r} is not the text of the distilled token at that id "
                           f"({readable(old)!r})")
        new = self._new_token(entry)
        if new in self.vocab:
            raise _Invalid(f"{readable(new)!r} is already in the vocabulary at id {self.vocab[new]}")
        if new in self.seen_new:
            raise _Invalid(f"{readable(new)!r} is already the new string of rule {self.seen_new[new]}")
        self.seen_new[new] = n
        # a reason and a saving were estimated for the string the rule had: one edited since (new_text changed
        # and new_token deleted, as the file's header says, or both changed, as the disagreement error offers,
        # when the gpt2_ids written with them spell another string) keeps neither
        edited = entry.get("new_token") != new or not self._spells(entry.get("gpt2_ids"), new)
        return RemapRule(
            id=rid,
            old_token=old,
            new_token=new,
            gpt2_ids=self._gpt2_ids(new, entry.get("gpt2_ids")),
            reason="edited by hand" if edited else str(entry.get("reason") or "edited by hand"),
            where=where,
            estimated_saving_pct=0.0 if edited else self._saving(entry.get("estimated_saving_pct")),
        )

    def _old_token(self, rid: int, given: object) -> str:
        """The token the rule frees: as written in a complete rule, else the tokenizer's piece at ``rid``."""
        if self.tokenizer is None:
            if not isinstance(given, str) or not given:
                raise _Invalid(f"old_token must be a non-empty string, got {given!r}")
            return given
        if not 0 <= rid < len(self.pieces):
            raise _Invalid(f"unknown id; ids run from 0 to {len(self.pieces) - 1}")
        return self.pieces[rid]

    def _new_token(self, entry: Mapping) -> str:
        """The rule's new string as a byte-level piece of whole UTF-8 characters, one pre-token when built."""
        token, text = entry.get("new_token"), entry.get("new_text")
        if token is None and text is None:
            raise _Invalid("needs new_text or new_token")
        if token is not None:
            if not isinstance(token, str) or not token or not set(token) <= self.alphabet:
                raise _Invalid(f"new_token {token!r} is not a non-empty byte-level piece")
            try:
                piece_to_bytes(token).decode("utf-8")
            except UnicodeDecodeError:
                raise _Invalid(f"new_token {token!r} is not whole UTF-8 characters") from None
        if text is not None and (not isinstance(text, str) or not text):
            raise _Invalid(f"new_text {text!r} is not a non-empty string")
        if text is not None and any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):  # YAML's "\ud800" escape
            raise _Invalid(f"new_text {text!r} holds a lone surrogate, which no UTF-8 text can")
        if token is not None and text is not None and text_to_piece(text) != token:
            raise _Invalid(f"new_text {text!r} and new_token {token!r} disagree; edit both or delete new_token")
        return token if token is not None else text_to_piece(text)

    def _spells(self, given: object, new: str) -> bool:
        """Whether the ``gpt2_ids`` a rule was written with spell ``new`` in the tokenizer being remapped; True
        where that cannot be told (none given, no tokenizer: remap's own candidates carry none)."""
        if given is None or self.tokenizer is None:
            return True
        return (isinstance(given, list) and all(_is_int(i) and 0 <= i < len(self.pieces) for i in given)
                and "".join(self.pieces[i] for i in given) == new)

    def _gpt2_ids(self, new: str, given: object) -> tuple[int, ...]:
        if self.tokenizer is not None:
            text = readable(new)
            if not single_pretoken(self.tokenizer, text):
                parts = [readable(p) for p in pre_tokens(self.tokenizer, text)]
                raise _Invalid(f"{text!r} would be split by the pre-tokenizer into {parts}")
            return tuple(t.id for t in self.tokenizer.model.tokenize(new))
        if not isinstance(given, list) or not given:
            raise _Invalid(f"gpt2_ids must be a non-empty list, got {given!r}")
        if not all(_is_int(i) for i in given):
            raise _Invalid(f"gpt2_ids must hold ints, got {given!r}")
        return tuple(given)

    @staticmethod
    def _saving(value: object) -> float:
        if value is None:
            return 0.0
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _Invalid(f"estimated_saving_pct must be a finite number (YAML: 1.0e-3, not 1e-3), got {value!r}")
        return float(value)


def id_contract(
    before: Tokenizer, after: Tokenizer, special: SpecialTokens, rules: Sequence[RemapRule],
    protected_ids: Collection[int] = (),
) -> dict[str, bool | list[int]]:
    """The ID contract of a remapped tokenizer against the one it was built from: the same vocabulary size, the
    same added tokens at the same ids, every id the config names (bos, eos, pad, unk) holding the same token,
    and no rule on a protected id: those, and ``protected_ids`` (the user's, ``data.select.protected_*``). Each
    check by name: True when it holds."""
    ours = {i: (t.content, t.special) for i, t in after.get_added_tokens_decoder().items()}
    theirs = {i: (t.content, t.special) for i, t in before.get_added_tokens_decoder().items()}
    protected = special.protected_ids() | set(protected_ids)
    return {
        "protected_ids": sorted(protected),
        "vocabulary size unchanged": after.get_vocab_size() == before.get_vocab_size(),
        "added tokens identical at the same ids": ours == theirs
        and {i: content for i, (content, _) in ours.items()} == special.added,
        "bos/eos/pad/unk ids hold the same tokens": all(
            after.id_to_token(i) == before.id_to_token(i) for i in special.role_ids().values()),
        "no rule frees a protected id": not any(r.id in protected for r in rules),
    }
