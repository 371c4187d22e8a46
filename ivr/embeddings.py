"""Embedding alignment: give every reassigned id a starting row that already means its new string.

The vocabulary keeps the original tokenizer's ids. Kept pieces keep their rows bit for bit; each id that
a remap rule hands to a domain string gets a row built from the model's own embeddings (by default the
mean of the rows of the original ids that string used to decompose into). Rows are read and written
through ``get_input_embeddings`` / ``get_output_embeddings``, so any ``AutoModelForCausalLM`` works, tied
or untied. A matrix with more rows than the tokenizer has ids (a padded model) keeps the extra rows as
they are.

Artifacts (``ArtifactPaths.embedding(name)`` plus ``embedding_metadata(name)``): ``original_wte``,
``aligned_wte``, ``final_wte``; ``original_wpe`` only for a model with learned position embeddings
(GPT-2; rotary models such as Llama have none); ``final_lm_head`` only for a model whose output layer is
not tied to its token embedding. Each ``.pt`` holds one CPU tensor. ``alignment.json``, always written,
says which of them exist and why.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import PreTrainedModel

from ivr.atomic import atomic_file, read_json_object, write_json
from ivr.causal_lm import check_ids_fit, learned_position_embeddings
from ivr.omp_init import sparse_codes
from ivr.paths import ArtifactPaths
from ivr.stamps import file_sha256
from ivr.tokenizers.io import read_special_tokens, read_vocabulary
from ivr.tokenizers.remap_rules import RemapRule, check_ids_in_range, read_remap_rules

InitStrategy = Literal["mean", "global_mean", "random", "zeros", "omp"]
INIT_STRATEGIES: tuple[str, ...] = ("mean", "global_mean", "random", "zeros", "omp")
# written by every align run; the optional files (original_wpe, final_lm_head) are listed inside it
ALWAYS_WRITTEN = ("original_wte", "aligned_wte", "final_wte")
OPTIONAL = ("original_wpe", "final_lm_head")
SUMMARY = "alignment"


@dataclass(frozen=True)
class AlignSettings:
    """How reassigned rows are initialised."""

    init_strategy: InitStrategy = "mean"
    """``mean``: mean of the original rows of the rule's ``gpt2_ids``; ``global_mean``: mean of all
    original rows; ``random``: normal draw with the original rows' per-dimension mean and std;
    ``zeros``: all zeros; ``omp``: orthogonal matching pursuit (mergekit tokensurgeon): the ``mean`` row
    written as a sparse combination of at most ``omp_atoms`` original rows of ids that are not reassigned."""

    seed: int = 0
    """Seed of the generator used by the ``random`` strategy."""

    omp_atoms: int = 16
    """``omp``: most rows in each combination; a target fitted exactly takes no more. tokensurgeon uses 64, but
    its targets are arbitrary vectors of a donor model, ours means of a few rows: on SmolLM2 (2,000 rules,
    2.5 pieces on average) 16 fit 90% of them exactly, as 64 do, in under half the time."""

    def __post_init__(self) -> None:
        if self.init_strategy not in INIT_STRATEGIES:
            raise ValueError(f"unknown init_strategy {self.init_strategy!r}; expected one of {list(INIT_STRATEGIES)}")
        if self.omp_atoms < 1:
            raise ValueError(f"data.align.omp_atoms must be at least 1, not {self.omp_atoms}")


def original_wte(model: PreTrainedModel) -> torch.Tensor:
    """A detached CPU copy of the token embedding matrix, ``[rows, n_embd]`` (rows ≥ the tokenizer's ids)."""
    return model.get_input_embeddings().weight.detach().cpu().clone()


def original_wpe(model: PreTrainedModel) -> torch.Tensor | None:
    """A detached CPU copy of the learned position embeddings, ``[n_positions, n_embd]``; None for a model
    without them (rotary positions)."""
    table = learned_position_embeddings(model)
    return None if table is None else table.weight.detach().cpu().clone()


def is_tied(model: PreTrainedModel) -> bool:
    """Whether the output layer and the token embedding are one parameter."""
    return model.get_output_embeddings().weight is model.get_input_embeddings().weight


def align_outputs(paths: ArtifactPaths) -> list[Path]:
    """The files the last align run wrote: those every run writes, and the optional ones (``original_wpe``,
    ``final_lm_head``) that its ``alignment.json`` names."""
    names = [*ALWAYS_WRITTEN]
    try:
        listed = read_json_object(paths.embedding_metadata(SUMMARY))["files"]
        names += [n for n in OPTIONAL if paths.embedding(n).name in listed]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or damaged: the stamp then fails on its signature
        pass
    return [paths.embedding(n) for n in names] + [paths.embedding_metadata(n) for n in (*names, SUMMARY)]


def alignment_index(
    original_vocab: Mapping[str, int], remapped_vocab: Mapping[str, int], rules: Sequence[RemapRule]
) -> torch.Tensor:
    """``source[j]``: the original id whose row starts id ``j`` of the remapped vocabulary.

    For a kept piece, ``source[j]`` is that piece's id in the original vocabulary (``j`` itself when
    IVR reassigns in place). For a reassigned id, ``source[j] = j``: the evicted piece's row stays as
    a placeholder until ``final_wte`` overwrites it. Raises when the two vocabularies differ in size,
    when a rule disagrees with either vocabulary, or when a piece is new without a rule.
    """
    size = len(original_vocab)
    if len(remapped_vocab) != size:
        raise ValueError(f"remapped vocabulary has {len(remapped_vocab)} ids, the original {size}")
    original_piece = {i: p for p, i in original_vocab.items()}
    remapped_piece = {i: p for p, i in remapped_vocab.items()}
    if sorted(remapped_piece) != list(range(size)):
        raise ValueError(f"remapped vocabulary ids are not exactly 0..{size - 1}")
    check_ids_in_range(rules, size)

    by_id = {r.id: r for r in rules}
    source = torch.empty(size, dtype=torch.long)
    for j in range(size):
        piece = remapped_piece[j]
        rule = by_id.get(j)
        if rule is not None:
            if original_piece.get(j) != rule.old_token:
                raise ValueError(
                    f"{rule.where}: old_token {rule.old_token!r} "
                    f"but the original tokenizer has {original_piece.get(j)!r}"
                )
            if piece != rule.new_token:
                raise ValueError(f"{rule.where}: new_token {rule.new_token!r} but the remapped tokenizer has {piece!r}")
            # the rows the new row is made from: a hand edit of new_text that kept the old gpt2_ids would start
            # the row from another string's meaning
            spelled = "".join(original_piece.get(i, "") for i in rule.gpt2_ids)
            if spelled != rule.new_token:
                raise ValueError(f"{rule.where}: gpt2_ids {list(rule.gpt2_ids)} spell {spelled!r} in the original "
                                 f"tokenizer, not new_token {rule.new_token!r}; give the ids of its pieces")
            source[j] = j
        elif piece in original_vocab:
            source[j] = original_vocab[piece]
        else:
            raise ValueError(
                f"remapped tokenizer holds {piece!r} at id {j}, absent from the original vocabulary and from the rules"
            )
    return source


def aligned_wte(original: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``original[source]``: every kept piece's original row at the id it has in the remapped tokenizer;
    rows past the vocabulary (padding) stay as they are."""
    return torch.cat([original.index_select(0, source), original[len(source) :]])


def nonfinite_rows(matrix: torch.Tensor) -> list[int]:
    return torch.nonzero(~torch.isfinite(matrix).all(dim=1)).flatten().tolist()


def reassigned_rows(original: torch.Tensor, rules: Sequence[RemapRule], settings: AlignSettings) -> torch.Tensor:
    """The new rows ``[len(rules), n_embd]``, in rule order, computed in float32 from ``original``."""
    check_ids_in_range(rules, original.shape[0])
    bad = nonfinite_rows(original)
    if bad:
        raise ValueError(f"original embeddings have non-finite rows at ids {bad[:20]} ({len(bad)} in all)")
    base = original.float()
    n, dim = len(rules), original.shape[1]
    if settings.init_strategy in ("mean", "omp"):
        rows = torch.stack([base[list(r.gpt2_ids)].mean(dim=0) for r in rules]) if rules else base.new_empty(0, dim)
        if settings.init_strategy == "omp" and rules:
            rows = omp_rows(base, rows, [r.id for r in rules], settings.omp_atoms)
    elif settings.init_strategy == "global_mean":
        rows = base.mean(dim=0).expand(n, dim).clone()
    elif settings.init_strategy == "random":
        generator = torch.Generator().manual_seed(settings.seed)
        noise = torch.randn(n, dim, generator=generator)
        rows = base.mean(dim=0) + base.std(dim=0) * noise
    else:
        rows = base.new_zeros(n, dim)
    bad = nonfinite_rows(rows)
    if bad:
        raise ValueError(f"{rules[bad[0]].where}: initialised row is not finite")
    return rows


def omp_rows(base: torch.Tensor, targets: torch.Tensor, reassigned: Sequence[int], atoms: int) -> torch.Tensor:
    """Each target as its sparse combination (``ivr.omp_init``) of the rows of ``base`` whose ids are not in
    ``reassigned``: the evicted pieces' rows meant something else and are about to be overwritten."""
    kept = torch.ones(base.shape[0], dtype=torch.bool)
    kept[list(reassigned)] = False
    dictionary = base[kept]
    indices, coefficients = sparse_codes(targets, dictionary, min(atoms, dictionary.shape[0]))
    return torch.bmm(coefficients.unsqueeze(1), dictionary[indices]).squeeze(1)


def final_wte(
    original: torch.Tensor,
    aligned: torch.Tensor,
    rules: Sequence[RemapRule],
    settings: AlignSettings = AlignSettings(),
    vocab_size: int | None = None,
) -> torch.Tensor:
    """``aligned`` with each rule's row replaced by its initialisation; every other row is untouched.

    Rows from ``vocab_size`` on are padding: no tokenizer id reaches them, so they neither take part in
    the ``global_mean`` and ``random`` statistics nor change."""
    if aligned.shape != original.shape:
        raise ValueError(f"aligned shape {tuple(aligned.shape)} differs from original {tuple(original.shape)}")
    out = aligned.clone()
    if rules:
        out[[r.id for r in rules]] = reassigned_rows(original[:vocab_size], rules, settings).to(out.dtype)
    return out


def install_embeddings(
    model: PreTrainedModel, final_wte: torch.Tensor, final_lm_head: torch.Tensor | None = None
) -> PreTrainedModel:
    """Copy ``final_wte`` into the model's token embedding in place and return the model.

    A tied model keeps its output layer and token embedding as one parameter, so the output rows
    follow. An untied model needs ``final_lm_head`` (written by ``align_embeddings`` as
    ``final_lm_head.pt``), whose reassigned rows were initialised the same way from its own rows.
    """
    wte = model.get_input_embeddings().weight
    lm_head = model.get_output_embeddings().weight
    tied = lm_head is wte
    if final_wte.shape != wte.shape:
        raise ValueError(f"final_wte shape {tuple(final_wte.shape)} does not fit wte {tuple(wte.shape)}: run "
                         "`ivr align` (or `ivr prepare`) with this config")
    if tied and final_lm_head is not None:
        raise ValueError("model ties lm_head to wte: final_lm_head must not be given")
    if not tied:
        if final_lm_head is None:
            raise ValueError(
                "model has an untied lm_head: pass final_lm_head (align_embeddings writes final_lm_head.pt)"
            )
        if final_lm_head.shape != lm_head.shape:
            raise ValueError(
                f"final_lm_head shape {tuple(final_lm_head.shape)} does not fit lm_head {tuple(lm_head.shape)}"
            )
    with torch.no_grad():
        wte.copy_(final_wte)
        if not tied:
            lm_head.copy_(final_lm_head)
    return model


def check_aligned_from(model: PreTrainedModel, original_wte: str | Path, final_wte: str | Path) -> None:
    """Refuse rows aligned from another model's token embedding: ``final_wte`` holds every row, so installing it
    would give the model another model's embedding (the configured model changed since ``ivr align``, or it was
    aligned with ``--model-name``). ``original_wte`` is the rows the alignment started from; a missing file is
    not checked."""
    path = Path(original_wte)
    if not path.is_file():
        return
    wte = model.get_input_embeddings().weight.detach()
    original = _load_rows(path)
    hint = "run `ivr align` (or `ivr prepare`) with this config to align them from this model"
    if original.shape != wte.shape:
        raise ValueError(f"{final_wte}: aligned from token rows of shape {tuple(original.shape)} ({path}), "
                         f"the model has {tuple(wte.shape)}: {hint}")
    if not torch.equal(original.to(device=wte.device, dtype=wte.dtype), wte):
        raise ValueError(f"{final_wte}: aligned from another model's token rows ({path} differs from the "
                         f"configured model's): {hint}")


def check_aligned_for(final_wte: str | Path, meta_path: str | Path, rules_path: str | Path) -> None:
    """Refuse rows ``final_wte`` aligned for other remap rules than ``rules_path`` (a remap run again since ``ivr
    align``, and a command such as ``ivr export`` that runs no stage): the reassigned rows would mean other strings
    than the tokenizer gives their ids. ``meta_path``: their metadata (``ArtifactPaths.embedding_metadata``); rows
    without a record of their rules are not checked."""
    try:
        aligned_for = read_json_object(meta_path).get("rules_sha256")
    except (OSError, ValueError):
        return
    if aligned_for is not None and Path(rules_path).is_file() and aligned_for != file_sha256(rules_path):
        raise ValueError(f"{final_wte}: aligned for other remap rules ({meta_path} records sha256 {aligned_for[:12]}) "
                         f"than {rules_path}: run `ivr align` (or `ivr prepare`) with this config")


def load_final_embeddings(final_wte: str | Path, final_lm_head: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``final_wte`` and, when it was written (untied models), ``final_lm_head``, for ``install_embeddings``."""
    wte_path, head_path = Path(final_wte), Path(final_lm_head)
    if not wte_path.is_file():
        raise FileNotFoundError(f"no embeddings at {wte_path}: run `ivr align` (or `ivr prepare`) first")
    head = _load_rows(head_path) if head_path.is_file() else None
    return _load_rows(wte_path), head


def _load_rows(path: Path) -> torch.Tensor:
    try:
        rows = torch.load(path, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        rows, why = None, str(err)
    else:  # a well-formed file replaced by hand with something else (a state dict, a vector)
        why = f"it holds {type(rows).__name__}" + (f" of shape {tuple(rows.shape)}" if torch.is_tensor(rows) else "")
    if torch.is_tensor(rows) and rows.dim() == 2:
        return rows
    raise ValueError(f"{path}: unreadable embedding rows ({why}, not a matrix of rows); run `ivr align` again, "
                     "which rebuilds a changed or truncated file")


def _norm_stats(rows: torch.Tensor) -> dict[str, float] | None:
    if rows.shape[0] == 0:
        return None
    norms = rows.float().norm(dim=1)
    return {"mean": norms.mean().item(), "min": norms.min().item(), "max": norms.max().item()}


def save_embedding(
    tensor: torch.Tensor, paths: ArtifactPaths, name: str, reference: torch.Tensor, metadata: dict
) -> dict:
    """Write ``<name>.pt`` and ``<name>.json`` atomically; ``reference`` is what "changed" rows differ from."""
    tensor = tensor.detach().cpu().contiguous()
    pt = paths.embedding(name)
    with atomic_file(pt) as tmp:
        # through a file handle the zip's folder is "archive", not the scratch file's name: the bytes repeat
        with open(tmp, "wb") as f:
            torch.save(tensor, f)
        sha = file_sha256(tmp)
    changed = (tensor != reference.to(tensor.device)).any(dim=1)
    meta = {
        "artifact": name,
        "file": pt.name,
        "sha256": sha,
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).removeprefix("torch."),
        **metadata,
        "rows_changed": int(changed.sum()),
        "changed_ids": torch.nonzero(changed).flatten().tolist(),
        "row_norms": {"changed": _norm_stats(tensor[changed]), "unchanged": _norm_stats(tensor[~changed])},
    }
    write_json(paths.embedding_metadata(name), meta)
    return meta


def _drop(paths: ArtifactPaths, name: str) -> None:
    """Remove an optional artifact an earlier run wrote for another model, so that nothing installs it."""
    paths.embedding(name).unlink(missing_ok=True)
    paths.embedding_metadata(name).unlink(missing_ok=True)


def align_embeddings(
    model: PreTrainedModel,
    paths: ArtifactPaths,
    settings: AlignSettings = AlignSettings(),
    *,
    model_name: str | dict | None = None,
    rules_path: Path | None = None,
    original_tokenizer_dir: Path | None = None,
    remapped_tokenizer_dir: Path | None = None,
) -> dict:
    """The alignment stage: write every embedding artifact and return their metadata by name.

    Inputs default to ``paths`` (``remap_rules``, ``original_tokenizer_dir``, ``remapped_tokenizer_dir``);
    ``model_name`` is what the metadata records as the base model: its name or path, or ``{"from_config": ...}``
    for one built from a config (default: the model's ``name_or_path``).
    The model is only read; use ``install_embeddings`` to put the result in a model.
    """
    rules_path = Path(rules_path or paths.remap_rules)
    original_dir = Path(original_tokenizer_dir or paths.original_tokenizer_dir)
    remapped_dir = Path(remapped_tokenizer_dir or paths.remapped_tokenizer_dir)
    # checked against the original's special ids too: a hand-given rules file could free its pad or bos token
    rules = read_remap_rules(rules_path, special=read_special_tokens(original_dir))
    original_vocab = read_vocabulary(original_dir)
    remapped_vocab = read_vocabulary(remapped_dir)

    wte, wpe = original_wte(model), original_wpe(model)
    vocab_size = len(original_vocab)
    check_ids_fit(wte.shape[0], vocab_size, original_dir)
    try:
        source = alignment_index(original_vocab, remapped_vocab, rules)
    except ValueError as err:
        raise ValueError(f"{err} (original tokenizer {original_dir}, remapped tokenizer {remapped_dir})") from None

    tied = is_tied(model)
    if getattr(model.get_output_embeddings(), "bias", None) is not None:
        # a reassigned id would keep the logit bias of the rare piece it replaces
        raise ValueError(f"{type(model).__name__} has a bias in its output layer: ivr initialises the reassigned "
                         "ids' weight rows only, so models with an output bias are not supported")
    common = {
        "model_name": model_name or model.config.name_or_path,
        "original_tokenizer_dir": str(original_dir),
        "remapped_tokenizer_dir": str(remapped_dir),
        "rules_file": str(rules_path),
        "rules_sha256": file_sha256(rules_path),
        "reassigned_ids": [r.id for r in rules],
        "vocab_size": vocab_size,
        "padding_rows": wte.shape[0] - vocab_size,
        "position_embeddings": "learned" if wpe is not None else "none",
        "tied_output_embeddings": tied,
    }
    init = {**common, **asdict(settings)}
    aligned = aligned_wte(wte, source)
    # every row computed before the first file is written: a failure leaves the files of one run, not of two
    final = final_wte(wte, aligned, rules, settings, vocab_size)
    head = None if tied else model.get_output_embeddings().weight.detach().cpu().clone()
    final_head = None if head is None else final_wte(head, aligned_wte(head, source), rules, settings, vocab_size)
    out = {
        "original_wte": save_embedding(wte, paths, "original_wte", wte, common),
        "aligned_wte": save_embedding(aligned, paths, "aligned_wte", wte, common),
        "final_wte": save_embedding(final, paths, "final_wte", wte, init),
    }
    if wpe is not None:
        # a table of positions: the token ids and counts of the rest do not describe it
        token_fields = ("reassigned_ids", "vocab_size", "padding_rows")
        out["original_wpe"] = save_embedding(wpe, paths, "original_wpe", wpe,
                                             {k: v for k, v in common.items() if k not in token_fields})
    else:
        _drop(paths, "original_wpe")
    if head is not None:
        out["final_lm_head"] = save_embedding(final_head, paths, "final_lm_head", head, init)
    else:
        # a stale untied head from an earlier run would be installed by load_final_embeddings
        _drop(paths, "final_lm_head")
    summary = {
        **common,
        **asdict(settings),
        "files": sorted(paths.embedding(name).name for name in out),
        "why": {
            "aligned_wte": "every kept piece's row at its id in the remapped tokenizer: the original rows where IVR "
            "reassigns in place (rows_changed 0), reassigned rows still the evicted pieces' until final_wte",
            "original_wpe": "written: the model learns position embeddings"
            if wpe is not None
            else "not written: the model has no learned position embeddings (rotary or computed positions)",
            "final_lm_head": "not written: the output layer is tied to the token embedding"
            if tied
            else "written: the output layer has rows of its own",
        },
    }
    write_json(paths.embedding_metadata(SUMMARY), summary)
    return out
