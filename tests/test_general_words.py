"""The general fit set: words of other languages, their forms and weights, and what they fix."""

from __future__ import annotations

from collections import Counter

import pytest

from ivr.general_english import most_frequent
from ivr.tokenizers.byte_level import text_to_piece
from ivr.tokenizers.distill.general_words import general_words, language_words, word_forms
from ivr.tokenizers.distill.settings import DistillSettings, parse_languages
from ivr.tokenizers.distill.stage import fit_distilled
from ivr.tokenizers.distill.words import fit_words
from ivr.tokenizers.unigram import bare_model
from tests.distill_fixtures import fast_settings


def test_word_forms_after_a_space_or_not_cased_and_in_capitals():
    assert word_forms("befehl", 0.25, upper=True) == [
        (" befehl", 1.0), ("befehl", 0.25), (" Befehl", 1.0), ("Befehl", 0.25), (" BEFEHL", 0.1), ("BEFEHL", 0.025)]
    # a script without case has one form, with and without a space
    assert word_forms("の", 0.25, upper=True) == [(" の", 1.0), ("の", 0.25)]


def test_language_words_are_pre_tokens_weighted_by_frequency(gpt2_bpe):
    ranked = [("und", 0.03), ("befehl", 2e-5), ("l'école", 1e-5), ("über", 1e-5)]
    words = language_words(gpt2_bpe, ranked, text_words=1e6)
    assert words["Ġund"] == pytest.approx(30000) and words["Und"] == pytest.approx(7500)
    assert words["ĠUND"] == pytest.approx(3000)  # capitals only for the list's first quarter
    assert words["ĠBefehl"] == pytest.approx(20) and words["Befehl"] == pytest.approx(5) and "ĠBEFEHL" not in words
    # a listed word is fitted as the pre-tokens running text cuts it into (GPT-2's regex: l · ' · école)
    assert words["Ġl"] == words["ĠL"] == pytest.approx(10) and "Ġl'Ã©cole" not in words
    assert words["'"] == words["Ã©cole"] == pytest.approx(25)
    assert words["ĠÃ¼ber"] == pytest.approx(10) and words["ĠÃľber"] == pytest.approx(10)
    assert language_words(gpt2_bpe, ranked, text_words=0) == Counter()


def test_general_words_sum_over_languages(gpt2_bpe):
    assert parse_languages(" de, fr es ") == ["de", "fr", "es"]
    de = general_words(gpt2_bpe, ["de"], 50, 1e6)
    both = general_words(gpt2_bpe, ["de", "nl"], 50, 1e6)
    assert len(de) > 100 and de["Ġund"] > 1000
    assert both["Ġin"] > de["Ġin"]  # "in" is a frequent word of both
    with pytest.raises(ValueError, match="general_languages: wordfreq has no word list for 'xx'"):
        general_words(gpt2_bpe, ["xx"], 10, 1e6)


def test_every_default_language_gives_general_words_offline(gpt2_bpe):
    """Japanese and Chinese too, without the segmenters wordfreq uses for running text of them (mecab, jieba)."""
    languages = parse_languages(DistillSettings().general_languages)
    assert {"ja", "zh", "ko", "ru"} <= set(languages)
    for lang in languages:
        words = general_words(gpt2_bpe, [lang], 20, 3e6)
        assert len(words) >= 20 and min(words.values()) > 0, lang
    # SmolLM2 and GPT-2 merge a space with a CJK character's first byte: the word after a space is a fit word
    zh = general_words(gpt2_bpe, ["zh"], 2000, 3e6)
    assert zh[text_to_piece(" 文件")] == pytest.approx(dict(most_frequent("zh", 2000))["文件"] * 3e6)


def test_fit_words_take_general_words_where_above_their_corpus_count(gpt2_bpe):
    pieces = list(gpt2_bpe.get_vocab())
    settings = fast_settings(general_languages="fr", general_words_per_language=50)
    words = fit_words(pieces, Counter({"Ġde": 10, "Ġxyz": 2}), settings, gpt2_bpe)
    assert words["Ġde"] > 10000 and words["Ġxyz"] == 2 and words["ĠLa"] > 1000
    with pytest.raises(ValueError, match="general_languages"):
        fit_words(pieces, Counter(), settings)
    assert fit_words(pieces, Counter({"Ġde": 10}), fast_settings(general_languages=""), None) == Counter({"Ġde": 10})


def test_a_french_word_the_merge_tree_scores_get_wrong_is_fixed_by_the_general_words(gpt2_bpe, distilled):
    # BPE: Ġcert · ains; merge-tree scores alone (the stand-in): Ġcertain · s. "certains" is among French's 300
    # commonest words, and the fit, which never sees French otherwise, gets it right by scores alone
    word = "Ġcertains"
    bpe_ids = bare_model(gpt2_bpe).encode(word).ids
    assert bare_model(distilled).encode(word).ids != bpe_ids
    settings = fast_settings(general_languages="fr", general_words_per_language=300, word_rules=0, split_rules=False)
    tok, _ = fit_distilled(gpt2_bpe, Counter({"Ġthe": 5, "Ġcode": 3}), settings)
    assert bare_model(tok).encode(word).ids == bpe_ids


def test_a_corpus_count_above_a_general_words_estimate_is_kept(gpt2_bpe):
    settings = fast_settings(general_languages="fr", general_words_per_language=50)
    general = fit_words([], Counter(), settings, gpt2_bpe)["Ġde"]
    assert fit_words([], Counter({"Ġde": 10 * general}), settings, gpt2_bpe)["Ġde"] == 10 * general


def test_no_general_text_adds_no_general_words(gpt2_bpe):
    """``general_text_words: 0`` turns the general words off: none joins the fit, not even at weight 0."""
    settings = fast_settings(general_languages="fr", general_words_per_language=50, general_text_words=0)
    assert set(fit_words([], Counter({"Ġxyz": 2}), settings, gpt2_bpe)) == {"Ġxyz"}
    assert len(language_words(gpt2_bpe, [("und", 0.03)], text_words=0)) == 0


def test_a_word_of_several_languages_weighs_the_sum_of_their_estimates(gpt2_bpe):
    de, nl = (general_words(gpt2_bpe, [lang], 50, 1e6) for lang in ("de", "nl"))
    both = general_words(gpt2_bpe, ["de", "nl"], 50, 1e6)
    assert both == de + nl and both["Ġin"] == pytest.approx(de["Ġin"] + nl["Ġin"]) and de["Ġin"] > 0


def test_the_most_frequent_words_are_those_of_a_fresh_sort_whatever_was_asked_before():
    import wordfreq

    from ivr.general_english import most_frequent

    ranked = sorted(wordfreq.get_frequency_dict("de").items(), key=lambda kv: kv[1], reverse=True)
    for n in (50, 5, 50, 0):  # the cache keeps each count's words apart, not the whole sorted list
        assert most_frequent("de", n) == ranked[:n]
