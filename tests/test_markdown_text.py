"""Strings in the reports' Markdown: every character visible, the code span never broken."""

from __future__ import annotations

from hypothesis import given, strategies as st

from ivr.markdown_text import code, inputs_section, pieces, setting_text


def test_spaces_escapes_and_backticks_are_visible():
    assert code("       ") == "`␠␠␠␠␠␠␠`" and code(" def") == "`␠def`"
    assert code('."""') == '`."""`' and code("a\nb\\") == "`a\\nb\\\\`"
    assert code("x|y") == "`x|y`" and code("x|y", table=True) == "`x\\|y`"  # a pipe is escaped in tables only
    assert code("") == "(empty)" and code("␠\u00a0") == "`\\u2420\\u00a0`"  # no look-alike of a space
    assert code("`x`") == "`` `x` ``" and code("a``b") == "```a``b```"
    assert pieces([" B", "ef"]) == "`␠B`·`ef`"


@given(st.text())
def test_a_code_span_holds_no_raw_space_newline_or_unescaped_pipe(text):
    shown = code(text, table=True)
    if not text:
        assert shown == "(empty)"
        return
    fence = shown[: len(shown) - len(shown.lstrip("`"))]
    inner = shown[len(fence):-len(fence)]
    assert shown.endswith(fence) and fence not in inner.strip(" ")  # the fence is longer than any run inside
    assert "\n" not in shown and "|" not in inner.replace("\\|", "")
    assert " " not in inner.strip(" ") or "`" in inner  # a space only pads a span that starts or ends with `


def test_settings_read_in_the_config_s_spelling():
    assert [setting_text(v) for v in (None, True, False, 1e6, 0.05, "", [], ["a", "b"], "en de", 3)] == [
        "none", "true", "false", "1000000", "0.05", "(empty)", "(empty)", "`a`, `b`", "en de", "3"]
    assert setting_text([" the", 7]) == "`␠the`, 7"
    assert setting_text(" -=") == "`␠-=`" and setting_text(" ") == "`␠`"  # a space at either end shows


def test_every_look_alike_of_a_space_is_an_escape():
    """Figure, narrow no-break and ideographic spaces render as blanks: a token of them must not read as spaces."""
    assert code("\u2007\u202f\u3000") == "`\\u2007\\u202f\\u3000`"


def test_a_backtick_at_one_end_of_a_string_is_padded_off_the_fence():
    """A fence beside a backtick would read as a longer fence, and the span would break."""
    assert code("`a") == "`` `a ``" and code("a`") == "`` a` ``"


def test_settings_that_are_tuples_huge_floats_or_end_in_white_space_read_as_written():
    assert setting_text(("a", 2)) == "`a`, 2"  # a dataclass setting's tuple is a list in the config
    assert setting_text(1e20) == "1e+20" and setting_text(-3.0) == "-3"
    assert setting_text("ab ") == "`ab␠`" and setting_text("a\t") == "`a\\t`"


def test_a_count_takes_the_plural_unless_it_is_one():
    from ivr.markdown_text import counted

    assert [counted(n, "special token") for n in (0, 1, 2)] == ["0 special tokens", "1 special token",
                                                                 "2 special tokens"]


def test_invisible_characters_and_line_separators_are_escapes():
    """Other spaces (en, em, thin, hair, Ogham), line and paragraph separators, C1 controls such as NEL, DEL, and
    format characters such as a zero-width space or a byte-order mark render as blanks, line breaks or nothing:
    a word of them must show which they are."""
    for char in "\u2002\u2003\u2009\u200a\u1680\u205f\u2028\u2029\x85\x7f\u200b\u200d\ufeff\u00ad":
        assert code(f"a{char}b") == f"`a\\u{ord(char):04x}b`", ascii(char)
    # an invisible character beyond the BMP is written as JSON writes it, as two escapes
    assert code("\U000e0001") == "`\\udb40\\udc01`"
    # visible characters stay as they are: letters, marks on them, emoji, CJK
    assert code("e\u0301 日本 👋🏽") == "`e\u0301␠日本␠👋🏽`"


def test_an_input_that_lists_files_shows_each_file_and_hash_as_the_json_records_it():
    # the reports' JSON records these strings; the Markdown twin must show the same ones, a space as a space
    recorded = ["/data/my notes.txt (sha256 ab12)", "/data/b.txt (sha256 cd34)"]
    text = "\n".join(inputs_section({"corpus": "/c (content 1)", "data.extra_eval_paths": recorded}))
    for entry in recorded:
        assert entry in text
    assert "␠" not in text
    assert "- data.extra_eval_paths: none" in "\n".join(inputs_section({"data.extra_eval_paths": None}))
