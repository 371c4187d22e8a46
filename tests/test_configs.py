"""Every shipped config parses, and the CLI lists every subcommand."""

from __future__ import annotations

import re

import pytest
import yaml

from ivr.cli import IVRCLI, main
from ivr.commands import IVRTrainer
from ivr.cli_parsing import requested_subcommand
from ivr.data import IVRDataModule
from ivr.model import IVRLanguageModel
from tests.conftest import CONFIGS


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(config), "--print_config"])
    assert exc.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    given = yaml.safe_load(config.read_text())

    def same(given_value, printed_value, where: str) -> None:
        if isinstance(given_value, dict):  # nested settings (data.distill, model.from_config, ...) key by key
            for key, value in given_value.items():
                same(value, printed_value[key], f"{where}.{key}")
        else:
            assert printed_value == given_value, f"{config.name}: {where}"

    for section in ("model", "data", "trainer", "checkpoint", "progress"):
        if section in given:
            same(given[section], printed[section], section)


def test_a_config_given_before_the_command_is_the_commands(capsys):
    config = next(c for c in CONFIGS if c.name == "demo.yaml")
    with pytest.raises(SystemExit):
        main(["-c", str(config), "prepare", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["builtin_corpus"] == "python_stdlib" and printed["model"]["model_name_or_path"] is None


def test_a_flag_before_the_config_overrides_it(capsys):
    config = next(c for c in CONFIGS if c.name == "demo.yaml")
    with pytest.raises(SystemExit):
        main(["prepare", "--trainer.max_steps", "2", "--config", str(config), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["max_steps"] == 2 and printed["data"]["builtin_corpus"] == "python_stdlib"


def test_every_config_file_goes_right_after_the_command_in_its_order_in_either_spelling():
    """A ``--config=FILE`` after a flag would override that flag: it moves before the flags like ``--config FILE``."""
    from ivr.cli_parsing import config_after_command

    argv = ["-c", "a.yaml", "prepare", "--data.block_size", "8", "--config=b.yaml", "--config", "c.yaml"]
    assert config_after_command(argv, {"prepare", "fit"}) == [
        "prepare", "--config", "a.yaml", "--config=b.yaml", "--config", "c.yaml", "--data.block_size", "8"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_builds_its_model_data_and_trainer(config, tmp_path, monkeypatch):
    # --print_config builds nothing: a value every class refuses (n_head not dividing n_embd) would pass it
    monkeypatch.chdir(tmp_path)  # the trainer's logger and the artifacts folder are relative to it
    cli = IVRCLI(IVRLanguageModel, IVRDataModule, trainer_class=IVRTrainer, args=["--config", str(config)],
                 run=False, auto_configure_optimizers=False)
    given = yaml.safe_load(config.read_text())
    assert cli.datamodule.hparams.block_size == given["data"].get("block_size", 256)
    assert cli.model.model is None  # weights are built by configure_model, not by the config
    assert isinstance(cli.trainer, IVRTrainer)


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "train", "prepare", "init", "analyze",
                 "distill-tokenizer", "select", "remap", "align", "verify-tokenizer", "export"):
        assert f"\n    {name} " in out or f"\n    {name}\n" in out, name


def test_a_command_builds_only_its_own_parser(tmp_path, monkeypatch):
    names = IVRCLI.subcommands()
    assert requested_subcommand(["prepare", "--config", "fit"], names) == "prepare"
    assert requested_subcommand(["-c", "fit.yaml", "fit"], names) == "fit"
    assert requested_subcommand(["--config=x.yaml", "distill-tokenizer"], names) == "distill-tokenizer"
    assert requested_subcommand(["--help"], names) is None
    assert requested_subcommand(["x.yaml", "fit"], names) is None  # not a command: every parser is built
    monkeypatch.setattr(IVRCLI, "_run_subcommand", lambda self, subcommand: None)
    args = ["select", "--data.artifacts_dir", str(tmp_path), "--data.select.num_replacements", "7"]

    def cli(requested):
        return IVRCLI(IVRLanguageModel, IVRDataModule, trainer_class=IVRTrainer, requested=requested, args=args,
                      auto_configure_optimizers=False)

    lazy, full = cli("select"), cli(None)
    assert "--data.select.num_replacements" in lazy._subcommand_parsers["select"].format_help()
    assert "--data.artifacts_dir" not in lazy._subcommand_parsers["fit"].format_help()  # bare: never parsed
    assert "--data.artifacts_dir" in full._subcommand_parsers["fit"].format_help()
    assert lazy.config == full.config and lazy.config.select.data.select.num_replacements == 7


def test_every_command_s_summary_is_a_whole_sentence(capsys):
    import re

    with pytest.raises(SystemExit):
        main(["--help"])
    summaries = re.findall(r"^    ([a-z-]+) +(\S[^\n]*(?:\n {24}\S[^\n]*)*)", capsys.readouterr().out, flags=re.M)
    assert len(summaries) >= 14
    cut = [name for name, text in summaries if not text.endswith((".", ")"))]
    assert not cut, cut


def test_checkpoint_help_says_where_checkpoints_go_and_the_last_ckpt_default(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    assert "Checkpoints (ModelCheckpoint), written under <data.artifacts_dir>/training/checkpoints:" in out
    save_last = " ".join(out[out.index("  --checkpoint.save_last"):].split("\n  --", 1)[0].split())
    assert "link (a symbolic link to the newest)" in save_last and "Default: ``None``" not in save_last


@pytest.mark.parametrize("command", ["fit", "select", "export"])
def test_every_command_s_help_says_how_to_see_a_traceback(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--debug (or IVR_DEBUG=1) shows its traceback" in capsys.readouterr().out


def test_init_help_documents_both_flag_spellings(capsys):
    with pytest.raises(SystemExit):
        main(["init", "--help"])
    out = capsys.readouterr().out
    for flag in ("--raw_corpora_dir", "--raw-corpora-dir", "--data.raw_corpora_dir", "--normalize-force",
                 "--text-key", "--encoding", "--force"):
        assert flag in out, flag


def test_a_bare_force_flag_means_true_and_a_value_after_it_is_kept_in_any_case():
    """``--force`` alone switches it on; ``--force False`` is a value the parser reads, not a bare flag before a
    stray word."""
    from ivr.cli_parsing import normalize_flags

    assert normalize_flags(["init", "--force"]) == ["init", "--force=true"]
    assert normalize_flags(["init", "--force", "False", "--normalize-force", "--text-key", "body"]) == [
        "init", "--force", "False", "--normalize_force=true", "--text_key", "body"]
    assert normalize_flags(["init", "--normalize-force", "true"]) == ["init", "--normalize_force", "true"]


def test_data_only_commands_show_only_data_options_but_parse_all(capsys):
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = capsys.readouterr().out
    assert "--data.select.num_replacements" in out and "Reads only the data.* options" in out
    assert "--trainer" not in out and "--model." not in out and "--checkpoint." not in out
    # a shared config's other sections still parse, and --print_config still prints them
    with pytest.raises(SystemExit):
        main(["select", "--trainer.max_steps", "3", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["trainer"]["max_steps"] == 3
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert "--trainer.max_steps" in capsys.readouterr().out
    # init shows its own shorthands beside the data options
    with pytest.raises(SystemExit):
        main(["init", "--help"])
    out = capsys.readouterr().out
    assert "--data.raw_corpora_dir" in out and "--raw_corpora_dir" in out and "--force" in out
    assert "--trainer" not in out and "--model." not in out and "--checkpoint." not in out


def test_train_takes_every_option_fit_takes(capsys):
    flags = {}
    for command in ("fit", "train", "validate", "test", "predict"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        flags[command] = set(re.findall(r"^  (--[\w.-]+)", capsys.readouterr().out, flags=re.M))
    assert "--weights_only" in flags["fit"] and flags["train"] == flags["fit"]
    # every command that restores a checkpoint the way Lightning does can be told to read it weights-only
    assert all("--weights_only" in flags[command] for command in ("validate", "test", "predict"))


def test_every_option_is_documented_in_help(capsys):
    """Every data/model knob shows a description in `ivr fit --help`, not just its type."""
    import re

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = capsys.readouterr().out
    entries = re.findall(r"^  (--(?:data|model)\.[\w.]+)[^\n]*\n((?: {24}[^\n]*\n)+)", out, flags=re.M)
    assert len(entries) > 40
    undocumented = [flag for flag, text in entries if text.strip().startswith("(type:") and not flag.endswith(".help")]
    assert not undocumented, undocumented


def test_docstring_parsing_is_cached_and_unchanged():
    from jsonargparse import _optionals, set_parsing_settings

    from ivr.cli_parsing import cache_docstring_parsing
    from ivr.tokenizers.distill import DistillSettings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    cache_docstring_parsing()
    cached = _optionals.parse_docstring
    first = cached(DistillSettings, params=True)
    assert cached(DistillSettings, params=True) is first  # parsed once
    fresh = cached.__wrapped__(DistillSettings, params=True)
    assert [(p.arg_name, p.description) for p in first.params] == [(p.arg_name, p.description) for p in fresh.params]
    assert any(p.arg_name == "split_rule_chars" for p in first.params)


def test_a_block_too_short_for_a_target_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"data\.block_size must be at least 2, got 1"):
        IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), block_size=1)
