"""The ``omp`` initialisation: orthogonal matching pursuit over the rows that are not reassigned."""

from __future__ import annotations

import pytest
import torch

from ivr.embeddings import AlignSettings, final_wte
from ivr.omp_init import sparse_codes
from ivr.tokenizers.remap_rules import RemapRule

OMP = AlignSettings(init_strategy="omp", omp_atoms=8)


def matrix(rows: int = 300, width: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))


def test_pursuit_recovers_an_exact_sparse_combination():
    atoms = matrix()
    target = 2.0 * atoms[5] - 0.7 * atoms[17] + 1.3 * atoms[290]
    indices, coefficients = sparse_codes(target[None], atoms, k=8)
    dense = torch.zeros(len(atoms)).index_add_(0, indices[0], coefficients[0])
    assert torch.nonzero(dense.abs() > 1e-4).flatten().tolist() == [5, 17, 290]
    assert dense[[5, 17, 290]].tolist() == pytest.approx([2.0, -0.7, 1.3], abs=1e-4)
    assert torch.allclose(coefficients[0] @ atoms[indices[0]], target, atol=1e-4)


def test_a_target_fitted_early_takes_no_more_rows():
    atoms = matrix()
    _, coefficients = sparse_codes(atoms[3:4] * 0.5, atoms, k=6)
    assert coefficients[0, 0].item() == pytest.approx(0.5, abs=1e-6)
    assert coefficients[0, 1:].abs().max().item() == 0.0


def test_omp_row_is_a_sparse_combination_of_kept_rows_only():
    original = matrix()
    # a reassigned row lies exactly along the target: a pursuit allowed to use it would take it first
    rules = [RemapRule(250, "o", "n", (10, 11)), RemapRule(251, "p", "m", (12, 13, 14))]
    original[250] = 3.0 * (original[10] + original[11])
    rows = final_wte(original, original.clone(), rules, OMP)
    # the new rows depend on no reassigned row: overwriting those rows changes nothing
    changed = original.clone()
    changed[[250, 251]] = torch.randn(2, original.shape[1])
    again = final_wte(changed, changed.clone(), rules, OMP)
    assert torch.equal(rows[[250, 251]], again[[250, 251]])
    # the mean of kept rows is itself a combination of kept rows: it is recovered
    assert torch.allclose(rows[250], original[[10, 11]].mean(0), atol=1e-5)
    assert torch.allclose(rows[251], original[[12, 13, 14]].mean(0), atol=1e-5)
    keep = torch.ones(len(original), dtype=torch.bool)
    keep[[250, 251]] = False
    assert torch.equal(rows[keep], original[keep])


def test_omp_atoms_bounds_the_rows_in_each_combination():
    original = matrix()
    rules = [RemapRule(250, "o", "n", (10, 11))]
    row = final_wte(original, original.clone(), rules, AlignSettings(init_strategy="omp", omp_atoms=1))[250]
    # one row, scaled: the mean of rows 10 and 11 is not taken whole
    cosines = torch.nn.functional.cosine_similarity(original[:250], row[None], dim=1)
    assert cosines.abs().max().item() == pytest.approx(1.0, abs=1e-5)


def test_the_default_fits_the_mean_of_sixteen_pieces_exactly():
    """``omp_atoms`` defaults to 16 (``data.align.omp_atoms``): a rule of up to 16 pieces keeps its mean."""
    original = torch.diag(torch.arange(1.0, 41.0))  # orthogonal rows: the mean needs every one of its rows
    rows = final_wte(original, original.clone(), [RemapRule(39, "o", "n", tuple(range(16)))],
                     AlignSettings(init_strategy="omp"))
    assert torch.allclose(rows[39], original[:16].mean(0), atol=1e-5)


def test_an_omp_atoms_above_the_rows_kept_uses_them_all():
    original = matrix(rows=6, width=8)
    rows = final_wte(original, original.clone(), [RemapRule(5, "o", "n", (0, 1))], AlignSettings(init_strategy="omp"))
    assert torch.allclose(rows[5], original[[0, 1]].mean(0), atol=1e-5)


def test_omp_is_deterministic():
    original = matrix(rows=400, width=32, seed=1)
    rules = [RemapRule(300 + i, "o", "n", (2 * i, 2 * i + 1, 150 + i)) for i in range(40)]
    first = final_wte(original, original.clone(), rules, OMP)
    assert torch.equal(first, final_wte(original, original.clone(), rules, OMP))


def test_omp_needs_at_least_one_atom():
    with pytest.raises(ValueError, match="omp_atoms"):
        AlignSettings(init_strategy="omp", omp_atoms=0)


@pytest.mark.parametrize("candidates", [1, 2])
def test_pursuit_ranks_rows_by_their_direction_not_their_length(candidates):
    """A short row along the target beats a long one at 45 degrees, when screening the candidates and when picking
    among them; a row pointing against the target is as good as one along it."""
    atoms = torch.tensor([[-0.1, 0.0, 0.0], [7.0, 7.0, 0.0], [0.0, 0.0, 1.0]])
    indices, coefficients = sparse_codes(torch.tensor([[1.0, 0.0, 0.0]]), atoms, k=1, candidates=candidates)
    assert indices.tolist() == [[0]] and coefficients[0, 0].item() == pytest.approx(-10.0)


def test_more_rows_than_candidates_are_each_screened_in():
    atoms = matrix(rows=10, width=8)
    target = atoms[1] - 2.0 * atoms[4] + 0.5 * atoms[8]
    indices, coefficients = sparse_codes(target[None], atoms, k=3, candidates=1)
    assert sorted(indices[0].tolist()) == [1, 4, 8]
    assert torch.allclose(coefficients[0] @ atoms[indices[0]], target, atol=1e-5)


def test_a_target_fitted_early_takes_no_more_rows_beside_one_that_needs_them():
    """Targets are fitted together: one already fitted keeps coefficients of exactly 0 while the other goes on."""
    atoms = matrix()
    targets = torch.stack([atoms[3] * 0.5, matrix(rows=1, seed=1)[0]])
    _, coefficients = sparse_codes(targets, atoms, k=6)
    assert coefficients[0, 0].item() == pytest.approx(0.5, abs=1e-6)
    assert coefficients[0, 1:].abs().max().item() == 0.0 and coefficients[1].abs().min().item() > 0
