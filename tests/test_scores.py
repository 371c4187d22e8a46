"""Initial merge weights and merge-tree scores."""

from __future__ import annotations

import numpy as np
import pytest

from tokenizers import Tokenizer, models

from ivr.tokenizers.distill.scores import initial_scores, merge_weights, piece_trees
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.unigram import unigram_tokenizer


def test_offset_one_is_the_plain_power_law_bit_for_bit():
    ranks = np.arange(50_000, dtype=np.float64)
    assert np.array_equal(merge_weights(50_000, 3.3), (ranks + 1.0) ** -3.3)
    assert np.array_equal(merge_weights(50_000, 3.3, 1.0), (ranks + 1.0) ** -3.3)


def test_an_offset_flattens_the_first_ranks_and_keeps_the_range_it_is_given():
    plain, flat = merge_weights(50_000, 3.3), merge_weights(50_000, 4.19, 10.0)
    assert plain[0] == flat[0] == 1.0
    assert np.all(np.diff(flat) < 0)
    # the first ranks weigh alike, the later ones fall faster
    assert flat[9] / flat[0] > 0.05 > plain[9] / plain[0]
    assert flat[20_000] / flat[10_000] < plain[20_000] / plain[10_000]
    # offset 10 at 4.19 spans about the float range of offset 1 at 3.3
    assert np.log2(flat[0] / flat[-1]) == pytest.approx(np.log2(plain[0] / plain[-1]), abs=0.1)


def test_a_piece_scores_the_weights_of_its_merge_tree():
    pieces = ["a", "b", "ab", "abb", "bb"]
    merges = [("a", "b"), ("ab", "b"), ("b", "b")]
    w = merge_weights(3, 2.0, 4.0)
    assert np.allclose(initial_scores(pieces, merges, 2.0, 4.0), [0, 0, w[0], w[0] + w[1], w[2]])


def test_a_decay_multiplies_each_weight_by_the_same_factor_per_rank():
    """``init_decay`` makes neighbouring late ranks differ as much as neighbouring early ones; at 0 the weights
    are the power's alone, bit for bit, so the default fit does not move."""
    power = merge_weights(50000, 2.5)
    assert np.array_equal(merge_weights(50000, 2.5, 1.0, 0.0), power)
    decayed = merge_weights(50000, 2.5, 1.0, 1e-4)
    assert np.allclose(decayed / power, np.exp(-1e-4 * np.arange(50000)), rtol=1e-12, atol=0)
    # late neighbours: the power alone keeps them within 0.01%, the decay sets them 1e-4 apart in the log
    assert np.log(power[-2] / power[-1]) < 1e-4 < np.log(decayed[-2] / decayed[-1])
    pieces, merges = ["a", "b", "ab", "abb"], [("a", "b"), ("ab", "b")]
    assert np.allclose(initial_scores(pieces, merges, 2.0, 1.0, decay=0.5),
                       [0, 0, 1.0, 1.0 + 2.0 ** -2 * np.exp(-0.5)], rtol=1e-12, atol=0)


def test_the_offset_must_be_positive():
    with pytest.raises(ValueError, match="init_offset must be positive"):
        merge_weights(10, 3.3, 0.0)
    with pytest.raises(ValueError, match="data.distill.init_offset must be positive, got -1"):
        DistillSettings(init_offset=-1)


def test_a_piece_listed_with_several_merges_is_built_as_bpe_builds_its_text():
    # tiktoken-converted vocabularies (Llama-3's) list every split of a piece: "abc" as ab+c first, but BPE joins
    # b+c (rank 0) before a+b (rank 1), so its text is built a+bc; ab+c in the tree would make a·bc outscore it
    pieces = ["a", "b", "c", "bc", "ab", "abc"]
    merges = [("b", "c"), ("a", "b"), ("ab", "c"), ("a", "bc")]
    assert [m for m, _ in piece_trees(merges)] == [("b", "c"), ("a", "b"), ("a", "bc")]
    w = merge_weights(3, 3.3)
    scores = initial_scores(pieces, merges, 3.3)
    assert np.allclose(scores, [0, 0, 0, w[0], w[1], w[0] + w[2]])
    bpe = Tokenizer(models.BPE({p: i for i, p in enumerate(pieces)}, merges))
    uni = unigram_tokenizer(pieces, scores)
    for text in pieces + ["abcabc", "cab", "bcab"]:
        assert uni.encode(text).ids == bpe.encode(text).ids, text


def test_a_part_built_after_the_piece_it_builds_still_counts_its_whole_tree():
    # BPE may apply a merge (a+bc, rank 0) whose part (b+c, rank 1) is built by a later merge
    pieces = ["a", "b", "c", "bc", "abc"]
    merges = [("a", "bc"), ("b", "c")]
    assert [m for m, _ in piece_trees(merges)] == merges
    w = merge_weights(2, 3.3)
    assert np.allclose(initial_scores(pieces, merges, 3.3), [0, 0, 0, w[1], w[0] + w[1]])


def test_a_piece_bpe_never_rebuilds_from_its_text_keeps_its_first_merge_or_outscores_bpes_pieces():
    # "abc" is listed as ab+c, but BPE turns its text into a·bc (b+c first) and never into abc
    pieces = ["a", "b", "c", "bc", "ab", "abc"]
    merges = [("b", "c"), ("a", "b"), ("ab", "c")]
    assert piece_trees(merges) == [(m, m) for m in merges]
    w = merge_weights(3, 3.3)
    assert np.allclose(initial_scores(pieces, merges, 3.3), [0, 0, 0, w[0], w[1], w[1] + w[2]])
    # with ignore_merges BPE gives "abc" back whole: its tree is BPE's pieces of its text, and one merge more
    assert piece_trees(merges, whole_pieces=True)[2] == (("ab", "c"), ("a", "bc"))
    scores = initial_scores(pieces, merges, 3.3, whole_pieces=True)
    assert np.allclose(scores, [0, 0, 0, w[0], w[1], w[0] + w[2]])
    bpe = Tokenizer(models.BPE({p: i for i, p in enumerate(pieces)}, merges, ignore_merges=True))
    uni = unigram_tokenizer(pieces, scores)
    for text in pieces:
        assert uni.encode(text).ids == bpe.encode(text).ids == [pieces.index(text)]


def test_a_merge_listed_twice_takes_its_last_rank_as_bpe_does():
    pieces = ["a", "b", "c", "ab", "bc"]
    merges = [("a", "b"), ("b", "c"), ("a", "b")]
    assert [m for m, _ in piece_trees(merges)] == [("b", "c"), ("a", "b")]
    bpe = Tokenizer(models.BPE({p: i for i, p in enumerate(pieces)}, merges))
    uni = unigram_tokenizer(pieces, initial_scores(pieces, merges, 3.3))
    assert uni.encode("abc").ids == bpe.encode("abc").ids == [0, 4]


def test_a_piece_listed_twice_that_bpe_never_rebuilds_keeps_its_first_listing():
    # BPE turns "abcd" into ab · cd, which no merge joins: of abc+d and a+bcd the first listed builds it
    merges = [("c", "d"), ("a", "b"), ("ab", "c"), ("b", "cd"), ("abc", "d"), ("a", "bcd")]
    assert piece_trees(merges)[-1] == (("abc", "d"), ("abc", "d")) and len(piece_trees(merges)) == 5


def test_a_merge_used_twice_in_a_tree_counts_twice():
    pieces = ["a", "aa", "aaaa"]
    merges = [("a", "a"), ("aa", "aa")]
    w = merge_weights(2, 3.3)
    assert np.allclose(initial_scores(pieces, merges, 3.3), [0, w[0], 2 * w[0] + w[1]])


def test_a_vocabulary_s_tree_matrix_is_built_once_and_each_caller_gets_its_own_copy(monkeypatch):
    from ivr.tokenizers.distill import scores

    pieces, merges = ["a", "b", "ab", "abb"], [("a", "b"), ("ab", "b")]
    built = []
    monkeypatch.setattr(scores, "piece_trees", lambda m, w=False: built.append(m) or piece_trees(m, w))
    scores._tree_matrix.cache_clear()
    first = scores.merge_tree_matrix(pieces, merges)
    first.data[:] = 0  # a caller changing its matrix changes no one else's
    again = scores.merge_tree_matrix(list(pieces), [list(m) for m in merges])  # the same vocabulary, other types
    assert len(built) == 1 and again.toarray().tolist() == [[0, 0], [0, 0], [1, 0], [1, 1]]
    scores.merge_tree_matrix(pieces, merges, whole_pieces=True)
    assert len(built) == 2
