from __future__ import annotations

import pytest

from ivr.analysis.general_use import code_reference, word_like
import ivr.analysis.select as select_module
from ivr.analysis.select import SelectSettings, select_replacements
from ivr.tokenizers.byte_level import text_to_piece


@pytest.mark.parametrize("text, judged", [
    (" procurement", True), ("addons", True), (" Procurement", True), ("é", True), ("a", True), ("A", True),
    ("-->", False), (" SOURCE", False), ("ENGTH", False), ("412", False), ("_.", False), (" macOS", False),
])
def test_only_words_the_word_list_could_hold_are_judged_by_it(text, judged):
    assert word_like(text_to_piece(text)) is judged


def test_word_like_ids_are_freed_before_markup_numbers_and_capitals(distilled, code_docs, tmp_path):
    # zero-count candidates are plentiful in a tiny code corpus, so every freed id can be word-like
    settings = SelectSettings(num_replacements=40, min_count=1, general_prior_words=2000, general_code_mb=0)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    freed = [r.freed_token for r in sel.replacements]
    assert freed and all(word_like(piece) for piece in freed), freed


def test_the_code_reference_samples_every_package_and_can_be_off():
    assert code_reference(0) == []
    texts = code_reference(0.3)
    size = sum(len(t.encode()) for t in texts)
    assert 0.1e6 < size < 0.6e6 and len(texts) > 10


def test_the_code_reference_leaves_out_the_domain_corpus_s_files():
    from ivr.builtin_corpora import python_stdlib_paths

    paths = python_stdlib_paths()
    texts = code_reference(1e6)  # every file
    assert len(texts) == len(paths)
    kept = code_reference(1e6, exclude=paths[::2])
    assert kept == texts[1::2]


def test_ids_the_code_reference_uses_are_freed_after_those_it_does_not(distilled, code_docs, tmp_path, monkeypatch):
    def select(code_mb):
        settings = SelectSettings(num_replacements=40, min_count=1, general_prior_words=0, general_code_mb=code_mb)
        return select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")

    first = [r for r in select(0.0).replacements[:5]]
    # the reference stands in for code that uses the first five freed tokens
    calls = []
    monkeypatch.setattr(select_module, "code_reference",
                        lambda mb, exclude=(): calls.append(mb) or ["x =" + "".join(r.freed_text for r in first) + "\n"] * 3)
    freed = {r.freed_id for r in select(0.5).replacements}
    assert calls == [0.5] and freed and not freed & {r.freed_id for r in first}
