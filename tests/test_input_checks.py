"""Bad settings and malformed input files fail at once, with the setting or the file and place named."""

from __future__ import annotations

import logging
import math
import os

import pytest

from ivr.cleaned_corpus import CorpusError
from ivr.corpus import CleaningOptions, clean_corpus, find_sources
from ivr.raw_records import split_long
from ivr.user_text import read_text_files
from ivr.data import IVRDataModule
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.words import read_word_list
from tests.conftest import ROOT


@pytest.mark.parametrize("limit", [0, -3])
def test_split_long_refuses_a_limit_that_takes_no_character(limit):
    # before the check this appended "" forever
    with pytest.raises(ValueError, match=rf"data\.max_document_chars must be a positive .*got {limit}"):
        split_long("some text", limit)
    assert split_long("abc", 1) == ["a", "b", "c"]


@pytest.mark.parametrize("key, value, says", [
    ("max_document_chars", 0, r"data\.max_document_chars must be a positive number of characters, got 0"),
    ("max_document_chars", -1, r"data\.max_document_chars must be a positive number of characters, got -1"),
    ("builtin_corpus_max_mb", 0.0, r"data\.builtin_corpus_max_mb must be a positive number of megabytes, got 0\.0"),
    ("builtin_corpus_max_mb", -2.0, r"data\.builtin_corpus_max_mb must be a positive number of megabytes, got -2\.0"),
    ("builtin_corpus_max_mb", math.nan, r"data\.builtin_corpus_max_mb must be a positive number of megabytes, got nan"),
    ("heldout_fraction", 0.0, r"data\.heldout_fraction must be in \(0, 1\), got 0\.0"),
    ("heldout_fraction", 1.0, r"data\.heldout_fraction must be in \(0, 1\), got 1\.0"),
])
def test_the_data_module_refuses_sizes_out_of_range(tmp_path, key, value, says):
    with pytest.raises(ValueError, match=says):
        IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), **{key: value})


@pytest.mark.parametrize("key", ["artifacts_dir", "embeddings_output_dir", "cleaned_corpora_dir"])
def test_a_folder_setting_that_names_a_file_is_refused_by_name(tmp_path, key):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x", encoding="utf-8")
    settings = {"artifacts_dir": str(tmp_path / "artifacts"), key: str(a_file)}
    with pytest.raises(NotADirectoryError, match=rf"data\.{key} .*notes\.txt is a file; name a folder"):
        IVRDataModule(**settings)
    module = IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"))
    module.hparams[key] = str(a_file)  # as a stage command's flag sets it after construction
    with pytest.raises(NotADirectoryError, match=rf"data\.{key} .*notes\.txt is a file"):
        module.paths
    assert IVRDataModule(**{**settings, key: str(tmp_path / "new")}).paths  # a folder still to make is fine


def test_init_with_no_document_size_fails_instead_of_hanging(tmp_path):
    from ivr.cli import main

    with pytest.raises(ValueError, match=r"data\.max_document_chars must be a positive"):
        main(["init", "--config", str(ROOT / "configs" / "demo.yaml"), "--data.artifacts_dir", str(tmp_path / "a"),
              "--data.max_document_chars", "0"])
    assert not (tmp_path / "a").exists()


def test_a_config_file_s_empty_values_are_named_where_a_value_is_needed(tmp_path):
    from ivr.cli import main

    config = tmp_path / "empty.yaml"
    # an empty `key:` is null; the optional tokenizer folder may be null, the others may not
    config.write_text("data:\n  distill:\n    general_languages:\n    split_rules:\n  block_size:\n"
                      "  tokenizer_local_dir:\nmodel:\n  learning_rate:\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^data\.distill\.general_languages, data\.distill\.split_rules, "
                                         r"data\.block_size, model\.learning_rate: null in a config file"):
        main(["init", "--config", str(ROOT / "configs" / "demo.yaml"), "--config", str(config),
              "--data.artifacts_dir", str(tmp_path / "a")])
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("text, key", [("data:\n  select: 2000\n", "data.select"),
                                       ("data:\n  align: [omp]\n", "data.align")])
def test_a_settings_group_given_a_value_is_named_not_a_type_error(tmp_path, text, key):
    from ivr.cli import main

    config = tmp_path / "flat.yaml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{key}: a group of settings, given a value"):
        main(["init", "--config", str(ROOT / "configs" / "demo.yaml"), "--config", str(config),
              "--data.artifacts_dir", str(tmp_path / "a")])
    assert not (tmp_path / "a").exists()


def test_a_zero_builtin_corpus_cap_is_named_not_blamed_on_the_raw_folder(tmp_path):
    options = CleaningOptions(builtin_corpus="python_stdlib", builtin_corpus_max_mb=0)
    with pytest.raises(CorpusError, match=r"data\.builtin_corpus_max_mb must be positive, got 0") as err:
        find_sources(tmp_path / "absent", options)
    assert "raw corpus directory" not in str(err.value)


def test_a_missing_raw_folder_beside_the_builtin_corpus_is_a_warning(tmp_path, caplog):
    options = CleaningOptions(builtin_corpus="python_stdlib", builtin_corpus_max_mb=0.01)
    typo = tmp_path / "raww"
    with caplog.at_level(logging.WARNING, logger="ivr.corpus"):
        sources = find_sources(typo, options)
    assert sources  # the built-in corpus alone still serves
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(typo) in warnings[0] and "data.raw_corpora_dir" in warnings[0]

    caplog.clear()  # the layout's own default folder, not created: an info line
    with caplog.at_level(logging.INFO, logger="ivr.corpus"):
        find_sources(typo, options, default_raw_dir=True)
    assert str(typo) in caplog.text and not [r for r in caplog.records if r.levelno >= logging.WARNING]

    caplog.clear()  # a named folder that gives no files (a code folder of .py files; a file for a folder): a warning
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "mod.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "one.jsonl").write_text("", encoding="utf-8")
    for given, says in [(tmp_path / "raw", "has no .txt, .jsonl or .json files"),
                        (tmp_path / "one.jsonl", "is a file, not a directory")]:
        with caplog.at_level(logging.WARNING, logger="ivr.corpus"):
            find_sources(given, options)
        (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert f"{given} (data.raw_corpora_dir) {says}; using data.builtin_corpus python_stdlib only" in warning
        caplog.clear()
    (tmp_path / "raw" / "a.txt").write_text("text", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="ivr.corpus"):
        find_sources(tmp_path / "raw", options)
    # the folder gives a file now: the code beside it is named as not read
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.startswith(f"raw corpus directory {tmp_path / 'raw'}: 1 file not read") and ".py: 1" in warning


@pytest.mark.parametrize("newline, encoding", [("\n", "utf-8"), ("\r\n", "utf-8"), ("\r", "utf-8"),
                                               ("\n", "utf-16"), ("\r\n", "utf-16")])
def test_a_jsonl_error_names_the_line_and_the_column_where_decoding_failed(tmp_path, newline, encoding):
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = ['{"text": "one"}', '{"text": "two" ', '{"text": "three"}']
    (raw / "bad.jsonl").write_bytes(newline.join(lines).encode(encoding) + newline.encode(encoding))
    # '{"text": "two" ' is 15 characters: the decoder wants a ',' or '}' just past them
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: invalid JSON \(Expecting ',' delimiter at column 16\) \(--data.on_bad_record skip"):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions(encoding=encoding))


def test_a_directory_among_the_extra_eval_paths_is_named(tmp_path):
    good = tmp_path / "eval.txt"
    good.write_text("text\r\n", encoding="utf-8")
    folder = tmp_path / "evals"
    folder.mkdir()
    assert read_text_files([str(good)]) == ["text\n"]
    with pytest.raises(CorpusError, match=rf"data\.extra_eval_paths: {folder} is a directory"):
        read_text_files([str(good), str(folder)])
    with pytest.raises(CorpusError, match=rf"{tmp_path / 'nope.txt'}: not found \(data\.extra_eval_paths\)"):
        read_text_files([str(tmp_path / "nope.txt")])


def test_a_word_list_line_with_extra_fields_is_refused(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("alpha\t3\nbeta\t3\tjunk\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:2: expected `word` or `word<TAB>count`, got 3 tab-separated"):
        read_word_list(path)
    with pytest.raises(ValueError, match=rf"{path}:2: .* \(data\.distill\.word_list\)"):
        DistillSettings(word_list=path)  # when the settings are read, before any stage runs
    path.write_text("alpha\t3\nbeta\t1e400\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path}:2: the count after the tab must be a positive, finite number"):
        DistillSettings(word_list=path)
    path.write_text("alpha\t3\nbeta\n", encoding="utf-8")
    assert read_word_list(path)["alpha"] == 3 and read_word_list(path)["beta"] == 1
    assert DistillSettings(word_list=path).word_list == path


@pytest.mark.parametrize("key, value, says", [
    ("init_exponent", 0.0, "must be positive, got 0.0"),
    ("init_exponent", math.inf, "must be positive and finite, got inf"),
    ("init_offset", 0.0, "must be positive, got 0.0"),
    ("init_offset", math.nan, "must be positive, got nan"),
    ("init_decay", -1e-4, "must be at least 0 and finite, got -0.0001"),
    ("init_decay", math.nan, "must be at least 0 and finite, got nan"),
    ("init_decay", math.inf, "must be at least 0 and finite, got inf"),
    ("margin", -0.05, "must be positive, got -0.05"),
    # a fraction of the smallest weight at stake, which is up to 1e12 in the program's units: far past 1 the
    # program's bounds read as infinite (the solver fails) or overflow (SciPy refuses them)
    ("margin", 1e300, r"must be at most 1000 \(a fraction of the smallest merge weight at stake: 0\.05 is 5%\), "
                      r"got 1e\+300"),
    ("slack_penalty", 0.0, "must be positive, got 0.0"),
    ("max_iterations", 0, "must be at least 1, got 0"),
    ("max_seconds", -1.0, r"must be at least 0 \(0: one round\), got -1.0"),
    ("number_words", -1, "must be at least 0, got -1"),
    ("number_words", 7, r"must be at most 6 \(7 would add 22 million fit words\), got 7"),
    ("max_run", 1, r"must be at least 2 \(to turn split rules off, set data\.distill\.split_rules false\), got 1"),
    ("max_run", (1, {"split_rules": False}), "must be at least 2, got 1"),  # no hint to set what is set already
    # BPE is asked about every run length, after every lead: the space's rule takes about 80 s at 1024 and grows
    # with more than the square of it
    ("max_run", 1025, r"must be at most 1024 \(the space's split rule takes about 80 s to build at 1024\), got 1025"),
    ("split_rule_min_fixed", -1.0, "must be at least 0, got -1.0"),
    ("word_rules", -1, r"must be at least 0 \(0: none\), got -1"),
    ("general_usage_words", -5, r"must be at least 0 \(0: none\), got -5"),
    ("general_words_per_language", -1, r"must be at least 0 \(0: none\), got -1"),
    ("general_text_words", -1.0, r"must be at least 0 \(0: no general words\), got -1.0"),
    ("general_text_words", math.inf, "must be finite, got inf"),
    # finite, but a frequent word's weight times the slack penalty overflows in the fit's linear program (as a word
    # list's counts are bounded)
    ("general_text_words", 1e308, r"must be at most 1e\+12 \(a word weighs its frequency times it, and the fit "
                                  r"multiplies weights by its penalties\), got 1e\+308"),
])
def test_distill_settings_out_of_range_name_their_key(key, value, says):
    value, others = value if isinstance(value, tuple) else (value, {})
    with pytest.raises(ValueError, match=rf"^data\.distill\.{key} {says}$"):
        DistillSettings(**{key: value}, **others)


def test_an_exponent_whose_last_merge_weighs_nothing_is_named(caplog):
    from ivr.tokenizers.distill.scores import merge_weights

    with caplog.at_level(logging.WARNING):
        assert merge_weights(50000, 3.3)[-1] > 0 and merge_weights(128000, 3.3)[-1] > 0  # GPT-2's, Llama-3's sizes
        assert not caplog.records
        merge_weights(50000, 4.5)  # float64 sums cannot hold 2^-70 beside 1
    assert "init_exponent 4.5 with init_offset 1.0: the last of 50000 merges weighs 2^-70" in caplog.text
    with pytest.raises(ValueError, match=r"data\.distill\.init_exponent 80.* last of 50000 merges underflows to 0"):
        merge_weights(50000, 80.0)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        merge_weights(50000, 3.3, 1.0, 1e-3)  # the decay spends range too: 2^-124 in all
    assert "init_exponent 3.3 with init_offset 1.0 and init_decay 0.001: the last of 50000 merges weighs 2^-124" \
        in caplog.text


def test_a_decay_that_leaves_the_last_merge_nothing_names_the_decay_not_the_exponent(caplog):
    """exp(-init_decay * rank) alone underflows past rank 745 at decay 1: no exponent, however low, helps."""
    from ivr.tokenizers.distill.scores import merge_weights

    with pytest.raises(ValueError, match=r"underflows to 0 in float64; lower data\.distill\.init_decay$"):
        merge_weights(50000, 3.3, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"underflows to 0 in float64; lower data\.distill\.init_exponent$"):
        merge_weights(50000, 80.0, 1.0, 1e-6)
    # neither alone underflows, both together do: either may go down
    with pytest.raises(ValueError, match=r"lower data\.distill\.init_exponent or data\.distill\.init_decay$"):
        merge_weights(50000, 60.0, 1.0, 5e-3)
    with caplog.at_level(logging.WARNING):
        merge_weights(50000, 0.5, 1.0, 1e-3)  # the decay spends nearly all of the 2^-80
    assert "lower data.distill.init_exponent or data.distill.init_decay" in caplog.text


def test_general_languages_named_twice_are_refused():
    with pytest.raises(ValueError, match=r"data\.distill\.general_languages: 'de' named more than once"):
        DistillSettings(general_languages="de, fr de")


def test_a_lone_surrogate_in_a_setting_of_characters_is_named_when_the_settings_are_read():
    """A YAML or JSON escape such as "\\ud800" gives one; it has no bytes, and the stage that reads the setting (after
    analyze) failed in the codec's words, naming no setting."""
    from ivr.analysis.select_settings import SelectSettings

    with pytest.raises(ValueError, match=r"^data\.select\.protected_tokens: '\\ud800x' holds a lone surrogate"):
        SelectSettings(protected_tokens=[" the", "\ud800x"])
    with pytest.raises(ValueError, match=r"^data\.distill\.split_rule_chars: '-=\\udc00' holds a lone surrogate"):
        DistillSettings(split_rule_chars="-=\udc00")
    SelectSettings(protected_tokens=["\U0001f600"])  # a character past U+FFFF, as JSON writes it in a pair
    DistillSettings(split_rule_chars="-=\u2500")


def test_a_path_setting_that_is_not_utf8_is_named_when_the_settings_are_read(tmp_path):
    """A Latin-1 name typed in a Latin-1 terminal reaches Python as lone surrogates: the file is there, but every
    report naming it (the selection log, the manifest) failed in the codec's words after the stage had run."""
    from ivr.analysis.select_settings import SelectSettings
    from ivr.model import IVRLanguageModel
    from ivr.tokenizers.remap import RemapSettings

    latin1 = tmp_path / os.fsdecode(b"caf\xe9.txt")
    latin1.write_text(" caf\n", encoding="utf-8")
    folder = tmp_path / os.fsdecode(b"tok\xe9")
    folder.mkdir()
    for make, setting in [(lambda: SelectSettings(forced_tokens_path=str(latin1)), "data.select.forced_tokens_path"),
                          (lambda: RemapSettings(remap_rules_path=str(latin1)), "data.remap.remap_rules_path"),
                          (lambda: DistillSettings(word_list=latin1), "data.distill.word_list"),
                          (lambda: IVRDataModule(artifacts_dir=str(tmp_path / os.fsdecode(b"a\xe9"))),
                           "data.artifacts_dir"),
                          (lambda: IVRDataModule(artifacts_dir=str(tmp_path), raw_corpora_dir=str(latin1.parent /
                                                 os.fsdecode(b"raw\xff"))), "data.raw_corpora_dir"),
                          # read by the tokenizers library, which said a tokenizer.json so named was no tokenizer file
                          (lambda: IVRDataModule(artifacts_dir=str(tmp_path), tokenizer_local_dir=str(folder)),
                           "data.tokenizer_local_dir"),
                          (lambda: IVRDataModule(artifacts_dir=str(tmp_path), tokenizer_name=str(folder)),
                           "data.tokenizer_name"),
                          (lambda: IVRDataModule(artifacts_dir=str(tmp_path), prompts_path=str(latin1)),
                           "data.prompts_path"),
                          (lambda: IVRLanguageModel(model_name_or_path=str(folder)), "model.model_name_or_path")]:
        with pytest.raises(ValueError, match=rf"\\udc(e9|ff)\S* \({setting}\): the path is not valid UTF-8 .* rename it"):
            make()


def test_verify_settings_refuse_nan():
    from ivr.tokenizers.verify import VerifySettings

    with pytest.raises(ValueError, match="data.verify.examples must be at least 0, got nan"):
        VerifySettings(examples=math.nan)


def test_distill_settings_at_their_bounds_are_accepted():
    DistillSettings()
    DistillSettings(init_offset=0.5, init_exponent=0.1, max_iterations=1, max_seconds=0.0, margin=1e-6,
                    slack_penalty=1e-3, number_words=0, max_run=2, split_rule_min_fixed=0.5, word_rules=0,
                    general_usage_words=0, general_words_per_language=0, general_text_words=0.0)
    DistillSettings(margin=1000.0)
    DistillSettings(max_seconds=math.inf, split_rule_min_fixed=math.inf)  # no time limit; only listed characters


def test_a_missing_file_in_the_settings_is_named_when_they_are_read(tmp_path):
    from ivr.analysis.select_settings import SelectSettings
    from ivr.tokenizers.remap import RemapSettings

    missing = tmp_path / "nope.txt"
    for make, setting in [(lambda: SelectSettings(general_reference_paths=[str(missing)]), "data.select.general_reference_paths"),
                          (lambda: RemapSettings(remap_rules_path=str(missing)), "data.remap.remap_rules_path"),
                          (lambda: DistillSettings(word_list=missing), "data.distill.word_list"),
                          (lambda: IVRDataModule(extra_eval_paths=[str(tmp_path)]), "data.extra_eval_paths")]:
        with pytest.raises(FileNotFoundError, match=rf"\({setting}\)"):
            make()
    with pytest.raises(FileNotFoundError, match=r"^/dev/null: is not a regular file .*\(data\.distill\.word_list\)"):
        DistillSettings(word_list="/dev/null")
    with pytest.raises(FileNotFoundError, match=r"^an empty path \(data\.distill\.word_list\): name a file, or drop"):
        DistillSettings(word_list="")
    with pytest.raises(FileNotFoundError, match=r"^\.: is a directory, not a file \(data\.distill\.word_list\)"):
        DistillSettings(word_list=".")


def test_an_extra_eval_file_named_like_a_built_in_report_set_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "general").write_text("text\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"data\.extra_eval_paths: 'general' is the name of a built-in report set; "
                                         r"write it as \./general"):
        IVRDataModule(extra_eval_paths=["general"])
    IVRDataModule(artifacts_dir=str(tmp_path / "a"), extra_eval_paths=["./general"])


def test_a_raw_corpus_path_that_is_a_file_is_named_as_one(tmp_path):
    single = tmp_path / "notes.txt"
    single.write_text("text\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"raw corpus directory {single} is a file, not a directory"):
        find_sources(single, CleaningOptions())


def test_a_chat_template_that_is_not_utf8_is_named(tmp_path):
    from ivr.tokenizers.io import read_chat_template

    (tmp_path / "chat_template.jinja").write_bytes("{{ 'café' }}".encode("latin-1"))
    with pytest.raises(ValueError, match=r"chat_template\.jinja: not valid UTF-8"):
        read_chat_template(tmp_path, {})


def test_a_tokenizer_rebuilt_during_a_run_is_refused_before_an_export(tmp_path):
    import json

    from tokenizers import Tokenizer

    from ivr.tokenizers.bpe import offline_gpt2_tokenizer
    from ivr.tokenizers.io import save_tokenizer_dir

    data = IVRDataModule(artifacts_dir=str(tmp_path / "art"), tokenizer="original")
    tok = offline_gpt2_tokenizer()
    save_tokenizer_dir(tok, data.paths.tokenizer_dir("original"), {"stage": "test"})
    data._vocabulary_sha256()  # as setup reads it when the data are loaded
    data.check_vocabulary_unchanged()
    spec = json.loads(tok.to_str())  # another run on the same artifacts rebuilt it: two ids swap their pieces
    vocab = spec["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]
    save_tokenizer_dir(Tokenizer.from_str(json.dumps(spec)), data.paths.tokenizer_dir("original"), {"stage": "test"})
    with pytest.raises(ValueError, match="gives ids other pieces than when this run started"):
        data.check_vocabulary_unchanged()


@pytest.mark.parametrize("key, value, says", [
    ("learning_rate", -1.0, "model.learning_rate must be positive and finite, got -1.0"),
    ("weight_decay", -1.0, "model.weight_decay must be 0 or more"),
    ("betas", (1.5, 0.9), r"model.betas must be two numbers in \[0, 1\)"),
    ("warmup_steps", -10, "model.warmup_steps must be 0 or more"),
    ("min_lr_ratio", -2.0, r"model.min_lr_ratio must be in \[0, 1\]"),
    ("min_lr_ratio", 1.5, r"model.min_lr_ratio must be in \[0, 1\]"),
])
def test_optimizer_settings_out_of_range_name_their_key(key, value, says):
    from ivr.causal_lm import ModelShape
    from ivr.model import IVRLanguageModel

    with pytest.raises(ValueError, match=says):
        IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(), **{key: value})


def test_the_ends_of_the_optimizer_ranges_are_settings_of_their_own():
    """A constant rate (``min_lr_ratio`` 1), a decay down to nothing (0), no warm-up and no weight decay."""
    from ivr.causal_lm import ModelShape
    from ivr.model import IVRLanguageModel

    for key, value in (("min_lr_ratio", 1.0), ("min_lr_ratio", 0.0), ("warmup_steps", 0), ("weight_decay", 0.0)):
        assert IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(), **{key: value}).hparams[key] == value


@pytest.mark.parametrize("key", ["n_layer", "n_head", "n_embd", "n_positions"])
def test_a_model_shape_without_blocks_heads_or_width_is_refused(key):
    from ivr.causal_lm import ModelShape

    with pytest.raises(ValueError, match=f"model.from_config.{key} must be at least 1, got 0"):
        ModelShape(**{key: 0})


def test_a_negative_worker_count_is_named():
    with pytest.raises(ValueError, match="data.num_workers must be 0 or more, got -2"):
        IVRDataModule(num_workers=-2)


def test_data_settings_that_cannot_work_with_the_model_are_refused_when_read(tmp_path):
    from ivr.causal_lm import ModelShape

    with pytest.raises(ValueError, match="data.artifacts_dir is empty"):
        IVRDataModule(artifacts_dir="")
    with pytest.raises(ValueError, match=r"data.block_size 64 is longer than the model's context of 32 tokens "
                                         r"\(model.from_config.n_positions\)"):
        IVRDataModule(artifacts_dir=str(tmp_path), block_size=64, base_model_config=ModelShape(n_positions=32))
    IVRDataModule(artifacts_dir=str(tmp_path), block_size=32, base_model_config={"n_positions": 32})


def test_a_lightning_setting_it_refuses_is_one_error_line(tmp_path, capsys, monkeypatch):
    from tests.conftest import tiny_cli_args

    from ivr.cli import main

    monkeypatch.setattr("sys.argv", ["ivr", "analyze", *tiny_cli_args(tmp_path), "--trainer.max_steps", "-5"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert "ivr: error: `max_steps` must be a non-negative integer or -1" in capsys.readouterr().err


def test_distill_settings_take_the_longest_number_words_allowed():
    from ivr.tokenizers.distill.settings import MAX_NUMBER_WORDS

    assert DistillSettings(number_words=MAX_NUMBER_WORDS).number_words == MAX_NUMBER_WORDS
    assert DistillSettings(general_text_words=1e12).general_text_words == 1e12


@pytest.mark.parametrize("key", ["max_seconds", "split_rule_min_fixed", "general_text_words"])
def test_distill_settings_refuse_nan_where_they_ask_for_at_least_a_bound(key):
    with pytest.raises(ValueError, match=rf"^data\.distill\.{key} must be at least 0.*, got nan$"):
        DistillSettings(**{key: math.nan})


def test_a_checkpoint_brought_without_its_tokenizer_leaves_the_stages_to_build_it(tmp_path):
    """A checkpoint from elsewhere, before any stage ran here: the stages build the tokenizer and the restore
    checks it, rather than the command failing on a tokenizer that does not exist yet."""
    import torch

    data = IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), tokenizer="original")
    ckpt = tmp_path / "brought.ckpt"
    torch.save({"IVRDataModule": {"tokenizer": "original", "vocabulary_sha256": "0" * 64}}, ckpt)
    data.keep_checkpoint_tokenizer(str(ckpt), "validate")
    assert data._kept_for is None  # prepare_data runs the stages
