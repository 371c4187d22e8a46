"""remap_rules.yaml: one reader, writer and validator; every error names the file, the rule and its id."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from tests.remap_fixtures import make_rules, write_rules

from ivr.tokenizers.byte_level import EOS_ID, EOS_TOKEN, text_to_piece
from ivr.tokenizers.candidates import Replacement
from ivr.tokenizers.remap_rules import (
    RULES_HEADER,
    RemapRule,
    RemapRuleError,
    check_ids_in_range,
    id_contract,
    read_remap_rules,
    rules_from_candidates,
    validate_remap_rules,
    write_remap_rules,
)

IDS = [40000, 40001, 40002]
# a rule the distilled stand-in accepts: 'Mach' is a rare multi-byte token, ' zygomorphic' one pre-token
FIRST = {"id": 49999, "old_token": "Mach", "new_text": " zygomorphic"}


@pytest.fixture(scope="module")
def rules():
    return make_rules()


def _texts(min_bytes: int):
    return st.text(min_size=1, max_size=12).filter(lambda t: len(t.encode("utf-8")) >= min_bytes)


@st.composite
def rule_lists(draw):
    ids = draw(st.lists(st.integers(0, 10**6), unique=True, max_size=6))
    news = draw(st.lists(_texts(1), unique_by=text_to_piece, min_size=len(ids), max_size=len(ids)))
    out = []
    for rid, new in zip(ids, news):
        old = text_to_piece(draw(_texts(2)))
        out.append(
            RemapRule(
                id=rid,
                old_token=old,
                new_token=text_to_piece(new),
                gpt2_ids=tuple(draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=5))),
                reason=draw(st.text(min_size=1, max_size=40)),
                estimated_saving_pct=draw(st.floats(allow_nan=False, allow_infinity=False)),
            )
        )
    return [r for r in out if r.old_token != EOS_TOKEN]


@hsettings(max_examples=60, deadline=None)
@given(rules=rule_lists())
def test_written_rules_read_back_equal(tmp_path_factory, rules):
    path = tmp_path_factory.mktemp("rt") / "remap_rules.yaml"
    write_remap_rules(path, rules)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(RULES_HEADER) and "data.remap.remap_rules_path" in text
    back = read_remap_rules(path)
    assert back == rules
    starts = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("- ")]
    assert [r.where for r in back] == [f"{path}:{line}: rule {n} (id {r.id})"
                                       for n, (r, line) in enumerate(zip(rules, starts), 1)]
    assert [(r.old_text, r.new_text) for r in back] == [(r.old_text, r.new_text) for r in rules]


def test_written_file_holds_readable_forms_and_no_where(tmp_path):
    rule = RemapRule(7, "Ġgrids", text_to_piece(" naïve"), (1, 2), "why", where="somewhere", estimated_saving_pct=1.5)
    write_remap_rules(tmp_path / "r.yaml", [rule])
    row = yaml.safe_load((tmp_path / "r.yaml").read_text(encoding="utf-8"))["rules"][0]
    assert row == {
        "id": 7, "old_token": "Ġgrids", "old_text": " grids", "new_token": text_to_piece(" naïve"),
        "new_text": " naïve", "gpt2_ids": [1, 2], "reason": "why", "estimated_saving_pct": 1.5,
    }


def test_a_next_line_character_survives_the_file(tmp_path):
    # PyYAML folds a raw U+0085 in a single-quoted string into a space; new_text would then disagree
    rules = [RemapRule(0, text_to_piece("\x85x"), text_to_piece("a\x85b"), (1,), "re\x85ason")]
    write_remap_rules(tmp_path / "r.yaml", rules)
    assert read_remap_rules(tmp_path / "r.yaml") == rules


def test_reader_accepts_list_and_mapping(tmp_path, rules):
    a = read_remap_rules(write_rules(tmp_path / "a.yaml", rules))
    b = read_remap_rules(write_rules(tmp_path / "b.yaml", rules, wrapped=True))
    assert [(r.id, r.new_token, r.gpt2_ids) for r in a] == [(r.id, r.new_token, r.gpt2_ids) for r in b]
    assert [r.id for r in a] == IDS and all(len(r.gpt2_ids) > 1 for r in a)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r[1].update(gpt2_ids=[]), r"rule 2 \(id 40001\): gpt2_ids must be a non-empty list"),
        (lambda r: r[0].pop("new_token"), r"rule 1 \(id 40000\): missing \['new_token'\]"),
        (lambda r: r[2].update(id=r[0]["id"]), r"rule 3 \(id 40000\): id already reassigned by rule 1"),
        (lambda r: r[0].update(id="7"), r"rule 1 \(id 7\): id must be an int"),
        (lambda r: r[0].update(gpt2_ids=[1, True]), r"gpt2_ids must hold ints"),
        (lambda r: r[0].update(id=True), r"rule 1 \(id True\): id must be an int"),
        (lambda r: r[1].update(old_token=""), r"rule 2 \(id 40001\): old_token must be a non-empty string"),
        (lambda r: r[1].update(old_token=EOS_TOKEN),
         r"rule 2 \(id 40001\): old_token <\|endoftext\|> is the document separator, not a token this rule may free"),
        (lambda r: r[1].update(old_token="a"), r"rule 2 \(id 40001\): single-byte token 'a' cannot be reassigned"),
        (lambda r: r[1].update(new_token="a b"), r"rule 2 \(id 40001\): new_token 'a b' is not a non-empty byte-level"),
        (lambda r: r[1].update(new_token="Ã"), r"rule 2 \(id 40001\): new_token 'Ã' is not whole UTF-8 characters"),
        (lambda r: r[1].update(new_text="other"), r"rule 2 \(id 40001\): new_text 'other' and new_token .* disagree"),
        (lambda r: r[2].update(new_token=r[0]["new_token"]), r"rule 3 \(id 40002\): ' mitochondria' is already the new "),
        (lambda r: r[2].update(estimated_saving_pct="lots"), r"rule 3 \(id 40002\): estimated_saving_pct must be a finite"),
        (lambda r: r[2].update(estimated_saving_pct=float("nan")), r"rule 3 \(id 40002\): estimated_saving_pct must be a finite"),
        (lambda r: r[2].update(estimated_saving_pct=float("-inf")), r"estimated_saving_pct must be a finite number"),
        # YAML reads `yes` as true, which Python would otherwise count as 1.0
        (lambda r: r[2].update(estimated_saving_pct=True), r"rule 3 \(id 40002\): estimated_saving_pct must be a finite"),
        (lambda r: r.append(["not", "a", "rule"]), r"rule 4: expected a mapping, got list"),
        # a misspelt key would leave the edit it was meant for undone
        (lambda r: r[1].update(nwe_text=" other"), r"rule 2 \(id 40001\): unknown key\(s\) \['nwe_text'\]"),
    ],
)
def test_reader_rejects_bad_rules(tmp_path, rules, edit, message):
    rules = json.loads(json.dumps(rules))
    edit(rules)
    path = write_rules(tmp_path / "bad.yaml", rules)
    with pytest.raises(RemapRuleError, match=message) as err:
        read_remap_rules(path)
    assert str(path) in str(err.value) and "<unicode string>" not in str(err.value)


def test_every_bad_rule_is_listed_at_once(tmp_path, rules):
    rules = json.loads(json.dumps(rules))
    rules[0]["gpt2_ids"] = []
    rules[2]["old_token"] = EOS_TOKEN
    with pytest.raises(RemapRuleError) as err:
        read_remap_rules(write_rules(tmp_path / "bad.yaml", rules))
    lines = str(err.value).splitlines()
    assert lines[0] == "2 invalid remap rule(s):"
    assert [line.split(":")[2] for line in lines[1:]] == [" rule 1 (id 40000)", " rule 3 (id 40002)"]


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("rules: 3\n", RemapRuleError, "expected a list of rules"),
        ("rules: [\n", RemapRuleError, "not valid YAML"),
        ("rules:\n-\tid: 1\n", RemapRuleError, r"rules\.yaml:2:2: not valid YAML: found character '\\t' that cannot start"),
        ("rules:\n- id: 1\n  new_text: a\n  new_text: b\n", RemapRuleError, r"rules\.yaml:4:3: not valid YAML: key 'new_text' repeated"),
        ("rules:\n- {id: 1, new_text: a, [1, 2]: 3}\n", RemapRuleError, r"rules\.yaml:2:24: not valid YAML: a rule's key must be a name, got a sequence"),
        # a number is no rule's key either: it would be dropped unread
        ("rules:\n- {id: 1, new_text: a, 2: 3}\n", RemapRuleError, r"rules\.yaml:2:24: not valid YAML: a rule's key must be a name, got 2"),
        ("rulez:\n- {id: 1, new_text: a}\n", RemapRuleError, r"rules\.yaml: unknown top-level key\(s\) \['rulez'\]"),
        ("rules:\n- {id: 1, new_text: " + "[" * 2000 + "]" * 2000 + "}\n", RemapRuleError,
         r"rules\.yaml: not valid YAML: collections nested too deeply"),
        (None, FileNotFoundError, "remap rules not found"),
    ],
)
def test_reader_rejects_a_file_that_is_not_a_rule_list(tmp_path, text, error, message):
    path = tmp_path / "rules.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(error, match=message) as err:
        read_remap_rules(path)
    assert str(path) in str(err.value) and "<unicode string>" not in str(err.value)


def test_ids_must_lie_in_the_vocabulary(tmp_path, rules):
    read = read_remap_rules(write_rules(tmp_path / "r.yaml", rules))
    check_ids_in_range(read, 50257)
    message = r"r.yaml:1: rule 1 \(id 40000\): ids \[40000\] outside the vocabulary \[0, 40000\)"
    with pytest.raises(RemapRuleError, match=message):
        check_ids_in_range(read, 40000)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"id": 60000, "new_text": "zzqqxx"}, "unknown id"),
        ({"id": 0, "new_text": "zzqqxx"}, "single-byte token"),
        ({"id": EOS_ID, "new_text": "zzqqxx"}, "<|endoftext|> cannot"),
        ({"id": "FIRST", "new_text": "zzqqxx"}, "already reassigned by rule 1"),
        ({"id": 50000, "new_text": "NEW"}, "already the new string of rule 1"),
        ({"id": 50000, "new_text": " the"}, "already in the vocabulary at id 262"),
        ({"id": 50000, "new_text": "foo bar"}, "would be split by the pre-tokenizer"),
        ({"id": 50000, "old_token": "nope", "new_text": "zzqqxx"}, "old_token 'nope' is not"),
        ({"id": 50000, "new_text": "zzqqxx", "new_token": text_to_piece("other")}, "disagree"),
        ({"id": 50000}, "needs new_text or new_token"),
        ({"id": 50000, "new_text": "x\ud800"}, "holds a lone surrogate"),
        ({"id": -1, "new_text": "zzqqxx"}, "unknown id"),
        ({"id": 50000, "old_text": "nope", "new_text": "zzqqxx"}, "old_text 'nope' is not the text"),
        ({"id": 50000, "new_text": ""}, "is not a non-empty string"),
        ({"id": 50000, "new_text": 7}, "is not a non-empty string"),
    ],
)
def test_invalid_rules_are_rejected_naming_the_rule(distilled, bad, message):
    first = dict(FIRST)
    bad = dict(bad)
    if bad["id"] == "FIRST":
        bad["id"] = first["id"]
    if bad.get("new_text") == "NEW":
        bad["new_text"] = first["new_text"]
    with pytest.raises(RemapRuleError) as err:
        validate_remap_rules([first, bad], "rules.yaml", distilled)
    text = str(err.value)
    assert f"rules.yaml: rule 2 (id {bad['id']})" in text and message in text
    assert not any(line.startswith("rules.yaml: rule 1 ") for line in text.splitlines())


def test_a_rule_being_built_takes_its_old_token_and_gpt2_ids_from_the_tokenizer(distilled):
    # a hand-edited rule: gpt2_ids are stale and recomputed, the old token is the piece at that id
    (rule,) = validate_remap_rules([{**FIRST, "gpt2_ids": [1, 2, 3]}], "rules.yaml", distilled)
    assert rule == RemapRule(49999, "Mach", text_to_piece(" zygomorphic"), (1976, 35641, 46374), "edited by hand")
    assert rule.where == "rules.yaml: rule 1 (id 49999)" and rule.new_text == " zygomorphic"


def test_an_edited_string_drops_the_reason_and_saving_estimated_for_the_old_one(distilled):
    written = {**FIRST, "new_token": text_to_piece(FIRST["new_text"]), "reason": "ranked #1: saves ~900 tokens",
               "estimated_saving_pct": 3.5}
    (kept,) = validate_remap_rules([written], "rules.yaml", distilled)
    assert (kept.reason, kept.estimated_saving_pct) == ("ranked #1: saves ~900 tokens", 3.5)
    edited = {k: v for k, v in written.items() if k != "new_token"} | {"new_text": " zygomorphous"}
    (rule,) = validate_remap_rules([edited], "rules.yaml", distilled)
    assert (rule.reason, rule.estimated_saving_pct, rule.new_text) == ("edited by hand", 0.0, " zygomorphous")


def test_a_string_edited_in_both_new_text_and_new_token_drops_the_old_reason_and_saving_too(distilled):
    # the disagreement error says "edit both": the file's gpt2_ids still spell the string the estimate was made for
    written = {**FIRST, "new_token": text_to_piece(FIRST["new_text"]), "gpt2_ids": [1976, 35641, 46374],
               "reason": "ranked #1: saves ~900 tokens", "estimated_saving_pct": 3.5}
    (kept,) = validate_remap_rules([written], "rules.yaml", distilled)
    assert (kept.reason, kept.estimated_saving_pct) == ("ranked #1: saves ~900 tokens", 3.5)
    edited = written | {"new_text": " zygomorphous", "new_token": text_to_piece(" zygomorphous")}
    (rule,) = validate_remap_rules([edited], "rules.yaml", distilled)
    assert (rule.reason, rule.estimated_saving_pct, rule.new_text) == ("edited by hand", 0.0, " zygomorphous")


def test_candidates_become_rules_with_their_reason(distilled):
    candidate = Replacement(
        rank=3, new_text=" zygomorphic", new_token=text_to_piece(" zygomorphic"), domain_count=12,
        gpt2_ids=[9], estimated_saving=24, estimated_saving_pct=0.5, freed_id=49999, freed_token="Mach",
        freed_text="Mach", freed_domain_count=1, freed_general_per_million=0.123456, reason="ranked",
    )
    (rule,) = validate_remap_rules(rules_from_candidates([candidate]), "c.csv", distilled)
    assert (rule.id, rule.old_token, rule.new_token, rule.estimated_saving_pct) == (49999, "Mach", candidate.new_token, 0.5)
    assert rule.gpt2_ids == (1976, 35641, 46374)
    assert rule.reason == (
        "ranked #3: 12 occurrences in the domain, saves ~24 tokens; "
        "old token used 1x in the domain, 0.123/M in general text"
    )


def test_the_written_file_starts_each_rule_at_its_id_and_shows_its_text_unescaped(tmp_path):
    """The file is read and edited by hand: a rule begins with its id, and non-ASCII text reads as itself."""
    rule = RemapRule(7, "Ġgrids", text_to_piece(" naïve 日本"), (1, 2), "why")
    write_remap_rules(tmp_path / "r.yaml", [rule])
    text = (tmp_path / "r.yaml").read_text(encoding="utf-8")
    assert "new_text: ' naïve 日本'" in text
    row = yaml.safe_load(text)["rules"][0]
    assert list(row) == ["id", "old_token", "old_text", "new_token", "new_text", "gpt2_ids", "reason",
                         "estimated_saving_pct"]


def test_a_negative_id_is_outside_the_vocabulary():
    """An embedding matrix would read a negative id as a row counted from its end."""
    rule = RemapRule(7, "Ġgrids", text_to_piece(" naïve"), (-1, 2), where="r.yaml: rule 1 (id 7)")
    with pytest.raises(RemapRuleError, match=r"r.yaml: rule 1 \(id 7\): ids \[-1\] outside the vocabulary \[0, 50257\)"):
        check_ids_in_range([rule], 50257)


def test_a_complete_rule_whose_old_token_is_an_added_token_elsewhere_is_refused():
    """Read without the tokenizer, a rule names its old token itself: one naming an added token would free it."""
    from ivr.tokenizers.special import SpecialTokens

    special = SpecialTokens(added={50257: EOS_TOKEN, 50258: "<|im_start|>"}, bos_id=50257, eos_id=50257, pad_id=None,
                            unk_id=None, separator_id=50257)
    rule = {"id": 40000, "old_token": "<|im_start|>", "new_token": "zz", "gpt2_ids": [89, 89]}
    with pytest.raises(RemapRuleError, match=r"rule 1 \(id 40000\): old_token <\|im_start\|> is an added token, "
                                             "not a token this rule may free at id 40000"):
        validate_remap_rules([rule], "r.yaml", None, special)


def test_a_rule_given_without_a_reason_says_it_was_edited_by_hand(distilled):
    (rule,) = validate_remap_rules([{"id": FIRST["id"], "new_token": text_to_piece(FIRST["new_text"])}], "rules.yaml",
                                   distilled)
    assert rule.reason == "edited by hand"


def test_the_id_contract_notices_a_vocabulary_that_grew():
    """Ids past the source's vocabulary have no embedding row to align."""
    from tests.remap_fixtures import tie_tokenizer
    from tokenizers import Tokenizer

    from ivr.tokenizers.special import special_tokens_of

    tok = tie_tokenizer()
    spec = json.loads(tok.to_str())
    spec["model"]["vocab"].append(["zq8", -30.0])
    contract = id_contract(tok, Tokenizer.from_str(json.dumps(spec)), special_tokens_of(tok), [])
    assert contract.pop("vocabulary size unchanged") is False
    assert all(ok is True for name, ok in contract.items() if name != "protected_ids")


def test_a_bad_rule_is_named_by_its_line_in_the_file(tmp_path, rules):
    # a rule without an id has nothing else to search the file for: the line it starts on finds it
    rules = json.loads(json.dumps(rules))
    del rules[2]["id"]
    path = write_rules(tmp_path / "bad.yaml", rules)
    start = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("- ")][2]
    with pytest.raises(RemapRuleError, match=rf"bad\.yaml:{start}: rule 3: missing \['id'\]"):
        read_remap_rules(path)
