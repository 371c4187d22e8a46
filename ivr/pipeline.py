"""The preparation pipeline: one typed function per stage, each stamped with its inputs and its code.

``init → analyze → distill-tokenizer → select → remap → align``, then the packed datasets. Every stage
reads its inputs from the artifact tree (:class:`~ivr.paths.ArtifactPaths`), writes its outputs there
atomically, and skips the work when its stamp shows the outputs were built from exactly these inputs by
exactly this code (see :mod:`ivr.stamps`). The CLI's stage commands and the DataModule's ``prepare_data``
only call :func:`run_stage` and :func:`build_datasets`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

from ivr.analysis.frequency import SplitIdSequences, analyze_corpus
from ivr.analysis.pretoken_table import PretokenRecorder, read_pretoken_counts
from ivr.analysis.select import select_replacements
from ivr.atomic import atomic_dir
from ivr.builtin_corpora import english_reference_texts
from ivr.causal_lm import (
    base_model, check_block_fits, check_ids_fit, check_pretrained_reachable, checkpoint_fingerprint,
    local_checkpoint_dir, local_pretrained_config,
)
from ivr.cleaned_corpus import SplitTexts, check_splits, corpus_content, iter_documents, read_manifest
from ivr.corpus import clean_corpus, cleaned_from_current_sources
from ivr.embeddings import align_embeddings, align_outputs
from ivr.export import EXPORT_METADATA_FILE
from ivr.figures import exact_share
from ivr.dataset_cache import build_datasets, dataset_dir  # noqa: F401 (dataset_dir: the data module's)
from ivr.packing import SPLIT_SOURCES, check_splits_may_fill
from ivr.paths import TOKENIZER_FILE, ArtifactPaths
from ivr.pipeline_config import LAST_STAGE, STAGES, PipelineConfig, TokenizerKind
from ivr.staging import artifacts_lock, config_shas, plain, sha, stage_code_fingerprint, staged
from ivr.stamps import is_current, library_versions, write_stamp
from ivr.tokenizers.distill import check_strict, distill_tokenizer, source_bpe
from ivr.tokenizers.io import added_token_ids, load_tokenizer, read_metadata, read_special_tokens, read_vocab_size
from ivr.tokenizers.pieces import vocab_pieces
from ivr.tokenizers.reachability import tokenizer_unreachable_ids
from ivr.tokenizers.remap import remap_tokenizer
from ivr.tokenizers.source import fetch_original_tokenizer, fetched_for_current_settings
from ivr.tokenizers.special import CHAT_TEMPLATE_FILE
from ivr.tokenizers.verify import read_report, verify_tokenizer
from ivr.user_text import read_text_files

log = logging.getLogger(__name__)


def _corpus_key(config: PipelineConfig) -> dict:
    return {"corpus": corpus_content(config.paths.cleaned_corpora_dir), "heldout_fraction": config.heldout_fraction}


def _inputs(config: PipelineConfig, *tokenizers: TokenizerKind, measured_files: bool = True, split: bool = True) -> dict:
    """What a report records of its inputs, by hash: the ``tokenizers`` it compares (one whose report sits in its
    own folder has its hash in its ``ivr_metadata.json``), the corpus and (with ``split``) its split, and with
    ``measured_files`` the extra evaluation files."""
    paths = config.paths
    files = [f"{p} (sha256 {sha(Path(p))})" for p in config.extra_eval_paths] if measured_files else []
    return {
        **{f"{kind} tokenizer": f"{paths.tokenizer_file(kind)} (sha256 {sha(paths.tokenizer_file(kind))})"
           for kind in tokenizers},
        "corpus": f"{paths.cleaned_corpora_dir} (content {corpus_content(paths.cleaned_corpora_dir)})",
        **({"data.heldout_fraction": config.heldout_fraction} if split else {}),
        **({"data.extra_eval_paths": files or None} if measured_files else {}),
    }


def _texts(config: PipelineConfig, split: Literal["train", "heldout"]) -> SplitTexts:
    """One split's texts, read from disk on each pass: a consumer that streams never holds the corpus."""
    return SplitTexts(config.paths.cleaned_corpora_dir, split, config.heldout_fraction)


def extra_eval_texts(config: PipelineConfig) -> dict[str, list[str]]:
    """English reference prose plus the user's extra files: text no fitting stage ever sees."""
    extra = {"english_reference": english_reference_texts()}
    if config.extra_eval_paths:
        files = list(config.extra_eval_paths)  # one set per file: the reports give each its own row
        extra.update(zip(files, ([t] for t in read_text_files(files))))
    return extra


# ---- stages -------------------------------------------------------------------------------------------------
def init(config: PipelineConfig) -> list[Path]:
    """Fetch the original tokenizer and clean the raw corpus (each reuses a complete earlier result)."""
    paths, source = config.paths, config.original
    with artifacts_lock(paths):
        fetch_original_tokenizer(paths.original_tokenizer_dir, source.name, source.local_dir, force=source.force, allow_hub=source.use_hub)
    clean(config)
    return [paths.original_tokenizer_dir, paths.cleaned_corpora_dir]


def clean(config: PipelineConfig) -> dict:
    """Clean the raw corpus (reusing a complete earlier result) and check its splits; the manifest."""
    paths = config.paths
    with artifacts_lock(paths):
        default_raw = paths.raw_corpora_dir == ArtifactPaths.from_config(paths.root).raw_corpora_dir
        manifest = clean_corpus(paths.raw_corpora_dir, paths.cleaned_corpora_dir, config.cleaning, force=config.normalize_force,
                                default_raw_dir=default_raw)
    counts = check_splits(paths.cleaned_corpora_dir, config.heldout_fraction, config.cleaning.max_document_chars)
    log.info("corpus: %d documents (%d train, %d held out), %d bytes", manifest["documents"], counts["train"], counts["heldout"], manifest["bytes"])
    if counts["heldout_also_in_train"]:  # the split goes by id: copies of one text may fall on both sides
        log.warning("held-out split: documents with the exact text of a training document: %d; held-out figures "
                    "count them as unseen", counts["heldout_also_in_train"])
    return manifest


def analyze(config: PipelineConfig) -> list[Path]:
    """Encode the corpus with the original BPE: id sequences and token frequencies."""
    paths = config.paths
    outputs = [paths.bpe_token_id_sequences, paths.token_frequency]
    def key() -> dict:  # every document is encoded: the held-out fraction decides nothing here
        return {"tokenizer": sha(paths.tokenizer_file("original")), "corpus": _corpus_key(config)["corpus"]}

    def build() -> None:
        documents = iter_documents(paths.cleaned_corpora_dir, None, config.heldout_fraction)
        size = read_manifest(paths.cleaned_corpora_dir)["bytes"]
        log.info("analyze: %s", analyze_corpus(load_tokenizer(paths.original_tokenizer_dir), documents, *outputs, total_bytes=size,
                                               inputs=_inputs(config, "original", measured_files=False, split=False)))

    return staged("analyze", paths, key, outputs, build, analyze)


def distill_key(config: PipelineConfig) -> dict:
    """What the distilled tokenizer is built from: a change to any of it rebuilds the stage."""
    paths = config.paths
    return {
        "tokenizer": sha(paths.tokenizer_file("original")),
        "tokenizer_configs": config_shas(paths.original_tokenizer_dir),
        "chat_template": sha(paths.original_tokenizer_dir / CHAT_TEMPLATE_FILE),  # copied into the tokenizer dir
        # strict only decides whether a verified mismatch fails the stage (_distilled), not what is fitted
        "settings": {k: v for k, v in plain(config.distill).items() if k != "strict"},
        # the settings name the word list; its words are what changes the fit
        "word_list": sha(Path(config.distill.word_list)) if config.distill.word_list else None,
        **_corpus_key(config),
    }


def _verification_key(config: PipelineConfig) -> dict:
    """What the distillation reports measure besides the fit's inputs: a change verifies again, never refits."""
    paths = config.paths
    return {
        "tokenizer": sha(paths.tokenizer_file("distilled")),
        "original_tokenizer": sha(paths.tokenizer_file("original")),
        "verify": plain(config.verify),
        "extra_eval_paths": [[p, sha(Path(p))] for p in config.extra_eval_paths],
        **_corpus_key(config),
        "code": stage_code_fingerprint(_verified),
        "libraries": library_versions(),
    }


def _verified(config: PipelineConfig, again: bool = False) -> dict | None:
    """Verify the distilled tokenizer and rewrite its reports (with the fit its metadata records), when the
    reports are not of this tokenizer, text and settings, or ``again``; the summary, or None when current."""
    paths = config.paths
    reports = [paths.distillation_report_md, paths.distillation_report_json]
    with artifacts_lock(paths):  # the reports are distillation's; a concurrent run must not write them meanwhile
        key = _verification_key(config)
        if not again and is_current(paths.stamp("verify-tokenizer"), key, reports):
            return None
        meta = read_metadata(paths.distilled_tokenizer_dir, required=True)
        summary = verify_tokenizer(
            load_tokenizer(paths.distilled_tokenizer_dir),
            load_tokenizer(paths.original_tokenizer_dir),
            {"corpus": _texts(config, "train"), "heldout": _texts(config, "heldout"), **extra_eval_texts(config)},
            *reports,
            config.verify,
            fit_info=meta.get("fit"),
            fit_settings=meta.get("settings"),
            inputs=_inputs(config, "original"),
        )
        write_stamp(paths.stamp("verify-tokenizer"), key, reports)
        return summary


def _check_distillable(paths: ArtifactPaths) -> None:
    """A source tokenizer distillation cannot reproduce (BPE dropout, a word prefix, byte fallback, another
    pre-tokenizer) is refused by name before analyze encodes the corpus with it; the original tokenizer alone
    trains with any byte-level BPE. Once per ``prepare``, right after init: the distill stage checks it again."""
    source_bpe(load_tokenizer(paths.original_tokenizer_dir))


def distill(config: PipelineConfig) -> list[Path]:
    """Fit the Unigram tokenizer that reproduces the original BPE id for id, save it and verify it."""
    return _distilled(config)[0]


def _distilled(config: PipelineConfig) -> tuple[list[Path], dict | None]:
    """``distill``'s outputs, and the verification summary where this call verified (a fit, or verification's
    own inputs changed: ``_verified``)."""
    paths = config.paths
    # verification compares with analyze's BPE ids, which the tokenizer and the corpus in the key determine
    analyze(config)
    # the reports are verification's, stamped on their own (_verified): a missing one verifies again, never refits
    outputs = [paths.distilled_tokenizer_dir, paths.distilled_pretokens]
    reports = [paths.distillation_report_md, paths.distillation_report_json]
    fitted: dict = {}

    def build() -> None:
        # verification encodes both splits with the saved tokenizer: selection's counts and the remapped tokenizer's
        # datasets are taken from its pre-tokens
        original = load_tokenizer(paths.original_tokenizer_dir)
        with atomic_dir(paths.distilled_pretokens) as table:
            recorder = PretokenRecorder(table, added_token_ids(original))
            summary = distill_tokenizer(
                original,
                _texts(config, "train"),
                _texts(config, "heldout"),
                replace(config.distill, strict=False),  # checked below, fitted or not
                paths.distilled_tokenizer_dir,
                *reports,
                extra_eval_texts=extra_eval_texts(config),
                verify_settings=config.verify,
                special=read_special_tokens(paths.original_tokenizer_dir),
                bpe_ids={name: SplitIdSequences(paths.cleaned_corpora_dir, paths.bpe_token_id_sequences, split,
                                                config.heldout_fraction)
                         for name, split in (("corpus", "train"), ("heldout", "heldout"))},
                on_encoded={"corpus": recorder.adder("train"), "heldout": recorder.adder("heldout")},
                inputs=_inputs(config, "original"),
            )
            recorder.finish(load_tokenizer(paths.distilled_tokenizer_dir),
                            sha(paths.tokenizer_file("distilled")), _corpus_key(config)["corpus"],
                            config.heldout_fraction)
        rates = {name: f"{exact_share(s['rates']['word_occurrence'])} ({s['mismatched_occurrences']} wrong)"
                 for name, s in summary.get("sets", {}).items()}
        log.info("distill-tokenizer: word occurrences with the original's ids: %s", rates)
        fitted["summary"] = summary
        write_stamp(paths.stamp("verify-tokenizer"), _verification_key(config), reports)

    built = staged("distill-tokenizer", paths, lambda: distill_key(config), outputs, build, distill)
    summary = fitted.get("summary") or _verified(config)
    if config.distill.strict:
        check_strict(summary or read_report(paths.distillation_report_json), paths.distillation_report_md)
    return [built[0], *reports, *built[1:]], summary


def verify(config: PipelineConfig) -> dict:
    """Compare the distilled tokenizer with BPE again; rewrite the report with the fit its metadata records."""
    # the tokenizer current first, as the other stage commands bring the stage before them; once verified is enough
    _, summary = _distilled(config)
    return summary if summary is not None else _verified(config, again=True)


def select(config: PipelineConfig) -> list[Path]:
    """Rank domain strings by tokens saved and pair them with ids the domain does not use (ids the original
    BPE can never produce first); the savings curve beside the log."""
    paths, settings = config.paths, config.select
    # the distilled tokenizer current first: a failed or stale distillation leaves one that no stamp vouches for
    distill(config)
    outputs = [paths.replacement_candidates, paths.selection_log]
    outputs += [paths.savings_curve] if settings.validation_fraction > 0 else []
    key = lambda: {  # noqa: E731
        "tokenizer": sha(paths.tokenizer_file("distilled")),
        "original_tokenizer": sha(paths.tokenizer_file("original")),
        "original_tokenizer_configs": config_shas(paths.original_tokenizer_dir),
        "settings": plain(settings),
        # the selection's own-id and general-text checks build the remapped tokenizer as remap will
        "new_piece_bonus": config.remap.new_piece_bonus,
        "inputs": [[p, sha(Path(p))] for p in [settings.forced_tokens_path, *settings.general_reference_paths] if p],
        **_corpus_key(config),
    }

    def build() -> None:
        unreachable = tokenizer_unreachable_ids(load_tokenizer(paths.original_tokenizer_dir))
        # ids the tokenizer's config names (bos, eos, pad, unk) are never freed, added tokens or not
        special = sorted(read_special_tokens(paths.original_tokenizer_dir).protected_ids())
        counted = read_pretoken_counts(paths.distilled_pretokens, sha(paths.tokenizer_file("distilled")),
                                       _corpus_key(config)["corpus"], config.heldout_fraction,
                                       settings.per_document_cap, settings.validation_fraction)
        if isinstance(counted, str):
            log.info("select: %s; cutting the training split into pre-tokens", counted)
            counted = None
        selection = select_replacements(
            load_tokenizer(paths.distilled_tokenizer_dir), _texts(config, "train"), settings, *outputs,
            unreachable=unreachable, counted=counted, new_piece_bonus=config.remap.new_piece_bonus,
            corpus_sources=[Path(f["source"]) for f in read_manifest(paths.cleaned_corpora_dir)["files"]],
            special_ids=special,
            inputs=_inputs(config, "original", "distilled", measured_files=False),
        )
        log.info("select: %s", {k: v for k, v in selection.summary.items() if k != "inputs"})
        if settings.validation_fraction <= 0:  # a curve left from an earlier run would describe another selection
            paths.savings_curve.unlink(missing_ok=True)

    return staged("select", paths, key, outputs, build, select)


def remap(config: PipelineConfig) -> list[Path]:
    """Write the remap rules (from the candidates, or a hand-edited file) and the remapped tokenizer."""
    paths, settings = config.paths, config.remap
    outputs = [paths.remapped_tokenizer_dir, paths.remap_rules, paths.remap_report_md, paths.remap_report_json]
    source = Path(settings.remap_rules_path) if settings.remap_rules_path else paths.replacement_candidates
    if settings.remap_rules_path and (source.resolve() == paths.remap_rules.resolve()
                                      or paths.remapped_tokenizer_dir.resolve() in source.resolve().parents):
        # the stage's own output, or a file in the folder it writes whole: every build would delete it
        raise ValueError(f"data.remap.remap_rules_path {source} is in {paths.remapped_tokenizer_dir}, which the remap "
                         "stage rewrites whole; copy it elsewhere, edit the copy and point "
                         "data.remap.remap_rules_path at that")
    # what the rules are read from current first (hand-edited rules need only the distilled tokenizer)
    if settings.remap_rules_path:
        distill(config)
    else:
        select(config)
    key = lambda: {  # noqa: E731
        "tokenizer": sha(paths.tokenizer_file("distilled")),
        # a path the user gave; the tree's own candidates by name, so that a moved tree keeps its stamps
        "rules_source": [str(source) if settings.remap_rules_path else source.name, sha(source)],
        "original_tokenizer_configs": config_shas(paths.original_tokenizer_dir),
        "original_chat_template": sha(paths.original_tokenizer_dir / CHAT_TEMPLATE_FILE),
        "settings": plain(settings),
        "protected": [config.select.protected_ids, config.select.protected_tokens],
        "extra_eval_paths": [[p, sha(Path(p))] for p in config.extra_eval_paths],
        **_corpus_key(config),
    }

    def build() -> None:
        distilled = load_tokenizer(paths.distilled_tokenizer_dir)
        summary = remap_tokenizer(
            distilled,
            settings,
            paths.remapped_tokenizer_dir,
            paths.remap_rules,
            paths.remap_report_md,
            paths.remap_report_json,
            candidates_csv=paths.replacement_candidates,
            heldout_texts=_texts(config, "heldout"),
            general_texts=english_reference_texts(),
            original_bpe=load_tokenizer(paths.original_tokenizer_dir),
            extra_texts={k: v for k, v in extra_eval_texts(config).items() if k != "english_reference"},
            special=read_special_tokens(paths.original_tokenizer_dir),
            described={
                "heldout_domain": f"the corpus's held-out documents (data.heldout_fraction {config.heldout_fraction})",
                "general": "general English: Python's help topics (the distillation report's english_reference; "
                           "the selection's general text, a word list and standard-library code, is another)",
                **dict.fromkeys(config.extra_eval_paths, "a file of data.extra_eval_paths"),
            },
            protected_ids=config.select.protected(vocab_pieces(distilled)),
            inputs=_inputs(config, "original", "distilled"),
        )
        log.info("remap: %s", {k: v for k, v in summary.items() if not isinstance(v, (dict, list))})

    return staged("remap", paths, key, outputs, build, remap)


def align(
    config: PipelineConfig,
    original_tokenizer_dir: str | Path | None = None,
    remapped_tokenizer_dir: str | Path | None = None,
    rules_path: str | Path | None = None,
) -> list[Path]:
    """Write original, aligned and final embedding rows; reassigned rows start from their new strings' meaning."""
    paths, base = config.paths, config.base_model
    original_dir = Path(original_tokenizer_dir or paths.original_tokenizer_dir)
    remapped_dir = Path(remapped_tokenizer_dir or paths.remapped_tokenizer_dir)
    # remap writes its rules into the remapped tokenizer's folder: another folder brings its own
    rules = Path(rules_path or remapped_dir / paths.remap_rules.name)
    if rules_path is None and remapped_tokenizer_dir is None and original_tokenizer_dir is None:
        remap(config)  # the rules current first, as every stage brings its inputs up to date
    if not rules.is_file():
        if rules_path:
            hint = "no such file (--remap-rules-path)"
        elif remapped_tokenizer_dir:
            hint = ("the folder given as the remapped tokenizer holds none: give a folder `ivr remap` wrote, "
                    "or the rules with --remap-rules-path FILE")
        else:
            hint = "run `ivr remap` (or `ivr prepare`) first"
        raise FileNotFoundError(f"no remap rules at {rules}: {hint}")
    if base.from_config is None and not base.name_or_path:
        raise ValueError("ivr align needs a base model: set model.model_name_or_path or model.from_config")
    if base.from_config is None and ((local_checkpoint_dir(base.name_or_path) or Path(base.name_or_path))
                                     / EXPORT_METADATA_FILE).is_file():
        # its ids already mean the new strings: aligning would overwrite the rows its fit trained
        raise ValueError(f"{base.name_or_path} is an ivr export, whose reassigned rows are trained already: go on "
                         "from its fit's checkpoint (--ckpt_path), or set model.model_name_or_path to the original "
                         "base model")
    key = lambda: {  # noqa: E731
        "base_model": plain(base.from_config) if base.from_config is not None else base.name_or_path,
        "base_model_files": checkpoint_fingerprint(base.name_or_path) if base.from_config is None else None,
        "rules": [str(rules) if rules_path else rules.name, sha(rules)],
        "original_tokenizer": sha(original_dir / TOKENIZER_FILE),
        "remapped_tokenizer": sha(remapped_dir / TOKENIZER_FILE),
        "settings": plain(config.align),
    }

    def build() -> None:
        # only its weights are read: eager attention, which every architecture has (GPT-Neo's has no sdpa)
        model = base_model(base.name_or_path, base.from_config, "eager")
        meta = align_embeddings(
            model,
            paths,
            config.align,
            model_name=base.name_or_path or {"from_config": plain(base.from_config)},
            rules_path=rules,
            original_tokenizer_dir=original_dir,
            remapped_tokenizer_dir=remapped_dir,
        )
        # IVR reassigns in place: only final_wte (and an untied final_lm_head) differ from the base model
        log.info("align: rows changed from the base model's: %s",
                 ", ".join(f"{name} {m.get('rows_changed')}" for name, m in meta.items()))

    return staged("align", paths, key, lambda: align_outputs(paths), build, align)


RUNNERS: dict[str, Callable[..., list[Path]]] = {
    "init": init,
    "analyze": analyze,
    "distill-tokenizer": distill,
    "select": select,
    "remap": remap,
    "align": align,
}


def run_stage(config: PipelineConfig, name: str, **overrides) -> list[Path]:
    """Run one stage (reusing up-to-date outputs) and return the artifacts it owns."""
    if name not in RUNNERS:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    paths = config.paths
    if name != "init" and not cleaned_from_current_sources(paths.raw_corpora_dir, paths.cleaned_corpora_dir,
                                                           config.cleaning):
        log.warning("the raw corpus (or the cleaning settings) changed since %s was cleaned: %s reads the earlier "
                    "cleaned copy; `ivr init` (or `ivr prepare`) cleans it again", paths.cleaned_corpora_dir, name)
    source = config.original
    if name != "init" and not fetched_for_current_settings(paths.original_tokenizer_dir, source.name, source.local_dir):
        log.warning("the original tokenizer's settings (data.tokenizer_name, data.tokenizer_local_dir), its files, "
                    "or the way ivr reads them changed since %s was fetched: %s reads the earlier copy; `ivr init` "
                    "(or `ivr prepare`) fetches it again",
                    paths.original_tokenizer_dir, name)
    return RUNNERS[name](config, **overrides)


def stages_needed(tokenizer: TokenizerKind) -> list[str]:
    """Every stage up to the one that makes the training tokenizer (and its embeddings)."""
    return list(STAGES[: STAGES.index(LAST_STAGE[tokenizer]) + 1])


def prepare(config: PipelineConfig, tokenizer: TokenizerKind, block_size: int,
            batch: tuple[int, int] | None = None, scorers: int = 1) -> list[Path]:
    """Every stage the training tokenizer needs, then the packed datasets; the artifacts in pipeline order.
    Refused right after init where, given ``batch`` (blocks per device, devices) for a fit, the training text cannot
    fill one batch, or the held-out text cannot give each of the ``scorers`` devices that validate or test a block."""
    base = config.base_model
    rows = getattr(base.from_config, "vocab_size", None)  # the model's token rows, where known without its weights
    if base.from_config is None and base.name_or_path:  # now, not after every stage
        if "align" in stages_needed(tokenizer):
            check_pretrained_reachable(base.name_or_path)  # align reads it
        pretrained = local_pretrained_config(base.name_or_path)
        check_block_fits(pretrained, block_size)
        rows = getattr(pretrained, "vocab_size", None)
    artifacts = []
    for name in stages_needed(tokenizer):
        artifacts += run_stage(config, name)
        if name == "init":  # now, not after distilling
            if "distill-tokenizer" in stages_needed(tokenizer):
                _check_distillable(config.paths)
            check_splits_may_fill({name: _texts(config, split) for name, split in SPLIT_SOURCES.items()},
                                  block_size, batch, scorers)
            check_ids_fit(rows, read_vocab_size(config.paths.original_tokenizer_dir),
                          config.paths.original_tokenizer_dir, from_config=base.from_config is not None)
    artifacts.append(build_datasets(config.paths, tokenizer, block_size, config.heldout_fraction))
    return artifacts
