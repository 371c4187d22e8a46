"""End to end through the ``ivr`` command on a tiny config: prepare, stage commands, and a short fit."""

from __future__ import annotations

import json
import re

import pytest

from ivr.cli import main
from tests.conftest import tiny_cli_args


def _snapshot(root):
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_prepare_prints_artifacts_and_second_run_rebuilds_nothing(tmp_path, capsys):
    main(["prepare", *tiny_cli_args(tmp_path)])
    out = capsys.readouterr().out
    art = tmp_path / "artifacts"
    for expected in ("tokenizers/original", "corpora/cleaned", "bpe_token_id_sequences.txt",
                     "token_frequency.parquet", "datasets/original-"):
        assert expected in out, expected
    assert (art / "analysis" / "reports" / "token_frequency.parquet").is_file()
    before = _snapshot(art)
    main(["prepare", *tiny_cli_args(tmp_path)])
    assert _snapshot(art) == before
    # another tokenizer file (the same ids, other offsets): new blocks, the earlier ones removed
    packed = list((art / "datasets").iterdir())
    assert [json.loads((p / "ivr_dataset.json").read_text())["block_size"] for p in packed] == [32]
    local = tmp_path / "local"
    local.mkdir()
    spec = json.loads((art / "tokenizers" / "original" / "tokenizer.json").read_text(encoding="utf-8"))
    spec["post_processor"]["trim_offsets"] = not spec["post_processor"]["trim_offsets"]
    (local / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    main(["prepare", *tiny_cli_args(tmp_path, "--data.tokenizer_local_dir", str(local))])
    assert len(list((art / "datasets").iterdir())) == 1 and not packed[0].exists()


def test_prepare_on_user_files(tmp_path, raw_dir, capsys):
    (raw_dir / "more.txt").write_text("def g(y):\n    return y * 2\n" * 200)
    main(["prepare", *tiny_cli_args(tmp_path, "--data.builtin_corpus", "null", "--data.raw_corpora_dir", str(raw_dir),
                                    "--data.heldout_fraction", "0.5", "--data.block_size", "8")])
    manifest = json.loads((tmp_path / "artifacts" / "corpora" / "cleaned" / "manifest.json").read_text())
    assert manifest["documents"] == 9 and manifest["builtin_corpus"] is None


def test_a_raw_file_touched_is_cleaned_again_but_nothing_after_it_rebuilds(tmp_path, raw_dir):
    import os

    (raw_dir / "more.txt").write_text("def g(y):\n    return y * 2\n" * 200)
    args = tiny_cli_args(tmp_path, "--data.builtin_corpus", "null", "--data.raw_corpora_dir", str(raw_dir),
                         "--data.heldout_fraction", "0.5", "--data.block_size", "8")
    main(["prepare", *args])
    art = tmp_path / "artifacts"
    manifest = json.loads((art / "corpora" / "cleaned" / "manifest.json").read_text())
    ids = art / "analysis" / "reports" / "bpe_token_id_sequences.txt"
    written, datasets = ids.stat().st_mtime_ns, sorted((art / "datasets").iterdir())
    stat = (raw_dir / "more.txt").stat()
    os.utime(raw_dir / "more.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # `touch`, a checkout
    main(["prepare", *args])
    again = json.loads((art / "corpora" / "cleaned" / "manifest.json").read_text())
    assert again["fingerprint"] != manifest["fingerprint"] and again["content"] == manifest["content"]
    assert ids.stat().st_mtime_ns == written and sorted((art / "datasets").iterdir()) == datasets


def test_prepare_refuses_a_split_short_of_a_block_before_distilling(tmp_path):
    from ivr.cleaned_corpus import SplitTexts

    # a context long enough for any block here: the splits decide
    args = tiny_cli_args(tmp_path, "--data.tokenizer", "remapped", "--model.from_config.n_positions", "1000000")
    main(["init", *args])
    art = tmp_path / "artifacts"
    # what any byte-level tokenizer could make at most: a token per byte, and a separator per document
    most = {split: sum(len(t.encode("utf-8")) + 1 for t in SplitTexts(art / "corpora" / "cleaned", split, 0.2))
            for split in ("train", "heldout")}
    assert most["train"] > most["heldout"]
    block = most["heldout"] + 1
    with pytest.raises(ValueError, match=f"the validation split has fewer than data.block_size={block} tokens"):
        main(["prepare", *args, "--data.block_size", str(block)])
    assert not (art / "analysis" / "reports").exists()  # refused before analyze, let alone distillation
    with pytest.raises(ValueError, match=f"the train split has fewer than data.block_size={most['train'] + 1}"):
        main(["prepare", *args, "--data.block_size", str(most["train"] + 1)])
    # a fit needs a batch of blocks: more than the training text could fill is refused as early; prepare builds
    # artifacts, which need no batch
    batch = most["train"] // 32 + 1
    with pytest.raises(ValueError, match=rf"at most {most['train'] // 32} blocks of data.block_size=32 tokens .*fewer "
                                         rf"than one batch \({batch} per device × 1 devices\)"):
        main(["fit", *args, "--data.batch_size", str(batch)])
    assert not (art / "analysis" / "reports").exists()


def test_an_unavailable_base_model_stops_prepare_before_any_stage(tmp_path):
    from ivr.causal_lm import PretrainedUnavailableError

    args = tiny_cli_args(tmp_path, "--data.tokenizer", "remapped", "--model.from_config", "null",
                         "--model.model_name_or_path", "someone/not-in-the-cache")
    with pytest.raises(PretrainedUnavailableError, match="'someone/not-in-the-cache': not a local checkpoint"):
        main(["prepare", *args])
    assert not (tmp_path / "artifacts" / "corpora" / "cleaned").exists()
    main(["init", *args])  # a stage before align needs no model
    assert (tmp_path / "artifacts" / "corpora" / "cleaned").is_dir()


def test_init_accepts_original_flag_spellings(tmp_path, raw_dir, capsys):
    cleaned = tmp_path / "elsewhere"
    main(["init", *tiny_cli_args(tmp_path, "--data.builtin_corpus", "null"), "--raw-corpora-dir", str(raw_dir),
          "--cleaned-corpora-dir", str(cleaned), "--text-key", "text", "--encoding", "utf-8", "--force",
          "--normalize-force"])
    assert (cleaned / "manifest.json").is_file()
    assert str(cleaned) in capsys.readouterr().out


def test_bad_corpus_fails_with_the_file_named(tmp_path, raw_dir):
    from ivr.cleaned_corpus import CorpusError

    (raw_dir / "bad.jsonl").write_text("{oops\n")
    with pytest.raises(CorpusError, match=r"bad\.jsonl:1"):
        main(["init", *tiny_cli_args(tmp_path, "--data.builtin_corpus", "null", "--data.raw_corpora_dir", str(raw_dir))])


def test_short_fit_writes_tensorboard_events_checkpoints_and_progress_lines(tmp_path, monkeypatch, caplog):
    import hashlib

    from ivr.model import IVRLanguageModel

    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO", logger="ivr.progress")
    batches = []  # (step, digest of the batch's ids) of every training step, in order
    step = IVRLanguageModel.training_step

    rates = {}  # the learning rate each step trains with

    def recording_step(self, batch, batch_idx):
        batches.append((self.global_step, hashlib.sha1(batch["input_ids"].numpy().tobytes()).hexdigest()))
        rates[self.global_step] = self.trainer.optimizers[0].param_groups[0]["lr"]
        return step(self, batch, batch_idx)

    monkeypatch.setattr(IVRLanguageModel, "training_step", recording_step)
    main(["train", *tiny_cli_args(tmp_path), "--trainer.max_steps", "3", "--trainer.val_check_interval", "3",
          "--trainer.limit_val_batches", "2", "--trainer.log_every_n_steps", "1", "--progress.every_seconds", "0"])
    version = tmp_path / "lightning_logs" / "version_0"
    assert list(version.glob("events.out.tfevents.*"))
    checkpoints = tmp_path / "artifacts" / "training" / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file()
    progress = [r.getMessage() for r in caplog.records if r.name == "ivr.progress"]
    assert any(m.startswith("train: step 3/3, loss ") and "tokens/s" in m and "ETA 0:00:00" in m for m in progress), progress
    assert any(m.startswith("validation at step 3: val/loss ") for m in progress), progress

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(version))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("train/loss", "val/loss", "val/perplexity", "val/bits_per_byte", "train/tokens_per_sec", "train/lr"):
        assert tag in tags, tag
    bpb = acc.Scalars("val/bits_per_byte")[-1].value
    assert 0 < bpb < 40
    logged = [e.value for e in acc.Scalars("train/lr")]
    assert logged == pytest.approx([rates[s] for s in sorted(rates)]) and logged[0] < logged[1]  # warming up
    # the fit's saved config serves the other commands too, its fit-only keys accepted and ignored
    saved = version / "config.yaml"
    assert "ckpt_path:" in saved.read_text() and "weights_only:" in saved.read_text()
    main(["prepare", "--config", str(saved)])

    import torch

    resumed_from = torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"]
    assert resumed_from > 0
    # resuming continues from the last checkpoint: the second run trains only the steps left
    main(["fit", *tiny_cli_args(tmp_path), "--trainer.max_steps", "5", "--trainer.val_check_interval", "2",
          "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1", "--ckpt_path", "last",
          "--model.learning_rate", "0.00123", "--model.weight_decay", "0.05"])
    acc = EventAccumulator(str(tmp_path / "lightning_logs" / "version_1"))
    acc.Reload()
    assert len(acc.Scalars("train/loss")) == 5 - resumed_from  # a fresh run to step 5 would log 5
    # checkpoints come with validation (every 2 steps here): the newest is at step 4
    resumed = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 4
    # the flags win over the optimizer settings the checkpoint brought back, as they do for the model's
    decay, no_decay = resumed["optimizer_states"][0]["param_groups"]
    assert decay["initial_lr"] == no_decay["initial_lr"] == 0.00123 and resumed["lr_schedulers"][0]["base_lrs"] == [0.00123] * 2
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    # the fit exported its final weights (step 5); exporting last.ckpt (step 4) over them says so
    record = tmp_path / "artifacts" / "training" / "hf_export" / "ivr_export.json"
    assert json.loads(record.read_text())["step"] == 5
    with caplog.at_level("WARNING", logger="ivr.commands"):
        main(["export", *tiny_cli_args(tmp_path)])
    assert "replacing the export of step 5" in caplog.text and json.loads(record.read_text())["step"] == 4
    # the resumed fit's saved config holds where it resumed from: export takes its checkpoint from the flag only
    resumed = (tmp_path / "lightning_logs" / "version_1" / "config.yaml").read_text()
    assert "ckpt_path: last" in resumed
    (tmp_path / "resumed.yaml").write_text(resumed.replace("ckpt_path: last", f"ckpt_path: {tmp_path / 'gone.ckpt'}"))
    main(["export", "--config", str(tmp_path / "resumed.yaml")])
    assert json.loads(record.read_text())["step"] == 4
    # a new fit on the same artifacts: last.ckpt is its checkpoint, not the earlier fit's beside a last-v1.ckpt
    interrupted, batches[:] = batches[:], []
    main(["fit", *tiny_cli_args(tmp_path), "--trainer.max_steps", "5", "--trainer.val_check_interval", "2",
          "--trainer.limit_val_batches", "1"])
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"] == 4
    # the resumed fit trained on the batches the uninterrupted one reached, not on the epoch's first ones again
    assert [s for s, _ in interrupted] == [0, 1, 2, 3, 4] and interrupted == batches
    assert not list(checkpoints.glob("*-v1.ckpt"))
    # a damaged checkpoint (here cut short) is named before Lightning or torch try to read it
    last = (checkpoints / "last.ckpt").resolve()
    intact = last.read_bytes()
    last.write_bytes(intact[:1000])
    for command in (["fit", "--ckpt_path", "last"], ["predict", "--data.prompts_path", str(tmp_path / "p.txt")]):
        (tmp_path / "p.txt").write_text("x\n")
        with pytest.raises(ValueError, match=r"\.ckpt: not a readable checkpoint"):
            main([command[0], *tiny_cli_args(tmp_path), *command[1:]])
    last.write_bytes(intact)
    # resuming with another model shape names the checkpoint and the first mismatch
    with pytest.raises(ValueError, match=r"last\.ckpt: its weights do not fit the configured model \(size mismatch"):
        main(["fit", *tiny_cli_args(tmp_path, "--model.from_config.n_embd", "32"), "--trainer.max_steps", "6",
              "--ckpt_path", "last"])
    # the file named by its path: the flags win over the checkpoint's saved settings there too
    with pytest.raises(ValueError, match=r"last\.ckpt: its weights do not fit the configured model \(size mismatch"):
        main(["fit", *tiny_cli_args(tmp_path, "--model.from_config.n_embd", "32"), "--trainer.max_steps", "6",
              "--ckpt_path", str(checkpoints / "last.ckpt")])
    # scoring it with another shape too; and predict runs in one process, which writes the one predictions file
    with pytest.raises(ValueError, match=r"last\.ckpt: its weights do not fit the configured model \(size mismatch"):
        main(["validate", *tiny_cli_args(tmp_path, "--model.from_config.n_inner", "32")])
    with pytest.raises(ValueError, match=r"ivr predict writes one predictions.jsonl from one process"):
        main(["predict", *tiny_cli_args(tmp_path), "--data.prompts_path", str(tmp_path / "p.txt"),
              "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"])


def test_a_checkpoint_file_given_by_path_is_checked_before_lightning_reads_it(tmp_path):
    import torch

    cut, tensor = tmp_path / "cut.ckpt", tmp_path / "final_wte.pt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {}}, cut)
    cut.write_bytes(cut.read_bytes()[:2000])
    torch.save(torch.zeros(3, 2), tensor)
    with pytest.raises(ValueError, match=r"cut\.ckpt: not a readable checkpoint"):
        main(["validate", *tiny_cli_args(tmp_path), "--ckpt_path", str(cut)])
    with pytest.raises(ValueError, match=r"final_wte\.pt is not a Lightning checkpoint"):
        main(["export", *tiny_cli_args(tmp_path), "--ckpt_path", str(tensor)])


def test_resuming_without_a_checkpoint_is_refused_not_started_afresh(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing to resume: .*last\.ckpt does not exist"):
        main(["fit", *tiny_cli_args(tmp_path), "--ckpt_path", "last"])
    assert not (tmp_path / "artifacts").exists()  # refused before any preparation


def test_a_fit_from_base_or_a_missing_checkpoint_is_refused_before_any_preparation(tmp_path):
    with pytest.raises(ValueError, match="--ckpt_path base is for validate, test, predict and export"):
        main(["fit", *tiny_cli_args(tmp_path), "--ckpt_path", "base"])
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path .*nope\.ckpt: no such checkpoint file"):
        main(["fit", *tiny_cli_args(tmp_path), "--ckpt_path", str(tmp_path / "nope.ckpt")])
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path best: no .*last\.ckpt to read the best checkpoint"):
        main(["fit", *tiny_cli_args(tmp_path), "--ckpt_path", "best"])
    import torch

    weights = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "global_step": 2}, weights)  # as checkpoint.save_weights_only has it
    with pytest.raises(ValueError, match=r"weights\.ckpt holds the weights only .*not the optimizer's state"):
        main(["fit", *tiny_cli_args(tmp_path), "--ckpt_path", str(weights)])
    assert not (tmp_path / "artifacts").exists()



def test_predict_continues_prompts_with_the_last_checkpoint(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO", logger="ivr.progress")
    # epochs of 2 batches and validation every 3: the interval counts batches across epochs, as the configs say
    args = tiny_cli_args(tmp_path, "--trainer.max_steps", "3", "--trainer.val_check_interval", "3",
                         "--trainer.limit_val_batches", "1", "--trainer.limit_train_batches", "2")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def main():\\n    \nimport os\n")
    main(["prepare", *args])
    with pytest.raises(FileNotFoundError, match="Run `ivr fit` first, pass --ckpt_path FILE, or --ckpt_path base"):
        main(["predict", *args, "--data.prompts_path", str(prompts)])
    with pytest.raises(FileNotFoundError, match="no checkpoint for ivr validate"):
        main(["validate", *args])
    main(["fit", *args])
    assert any(r.getMessage().startswith("validation at step 3: ") for r in caplog.records if r.name == "ivr.progress")
    main(["predict", *args, "--data.prompts_path", str(prompts), "--max_new_tokens", "5"])
    records = [json.loads(line) for line in (tmp_path / "artifacts" / "training" / "predictions.jsonl").open()]
    assert [r["prompt"] for r in records] == ["def main():\n    ", "import os"]
    assert all(isinstance(r["continuation"], str) and r["continuation"] for r in records)
    out = capsys.readouterr().out
    assert "2 continuations written" in out and "using the last fit's checkpoint" in out
    # validate and test score the fine-tuned model unless told otherwise; export takes `last` as fit does
    main(["validate", *args])
    # the step is not restored for validation: the line names the checkpoint scored
    assert any(r.getMessage().startswith("validation of ") and "last.ckpt: val/loss" in r.getMessage()
               for r in caplog.records if r.name == "ivr.progress")
    main(["test", *args, "--ckpt_path", "base"])
    main(["export", *args, "--ckpt_path", "last"])
    out = capsys.readouterr().out
    assert "ivr validate: using the last fit's checkpoint" in out
    assert "ivr test: using the configured model without fine-tuning" in out and "test/loss" in out
    record = json.loads((tmp_path / "artifacts" / "training" / "hf_export" / "ivr_export.json").read_text())
    assert record["checkpoint"].endswith("last.ckpt") and record["weights"] == "checkpoint"
    # export's default is the last fit's checkpoint too, never the base model over the fine-tuned export
    main(["export", *args])
    record = json.loads((tmp_path / "artifacts" / "training" / "hf_export" / "ivr_export.json").read_text())
    assert record["checkpoint"].endswith("last.ckpt")
    # the distilled tokenizer gives every piece the original's id: the checkpoint exports with it
    main(["distill-tokenizer", *args, "--data.distill.max_iterations", "1", "--data.verify.random_id_sequences", "10"])
    main(["export", *args, "--data.tokenizer", "distilled", "--ckpt_path", "last"])
    assert json.loads((tmp_path / "artifacts" / "training" / "hf_export" / "ivr_export.json").read_text())[
        "tokenizer"] == "distilled"
    # the cleaned corpus deleted since the fit: cleaned again for the blocks, the tokenizer kept
    import shutil

    shutil.rmtree(tmp_path / "artifacts" / "corpora" / "cleaned")
    # predict reads no corpus: the prompts are continued without cleaning it again
    main(["predict", *args, "--data.prompts_path", str(prompts), "--max_new_tokens", "1"])
    assert not (tmp_path / "artifacts" / "corpora" / "cleaned").exists()
    main(["validate", *args])
    # `best` is the one the fit's ModelCheckpoint recorded (without a monitor, its newest), read from last.ckpt
    capsys.readouterr()
    main(["validate", *args, "--ckpt_path", "best"])
    assert re.search(r"ivr validate: using the last fit's best checkpoint .*step=3\.ckpt", capsys.readouterr().out)
    with pytest.raises(ValueError, match="hf_export is a Hugging Face model folder .* set model.model_name_or_path"):
        main(["validate", *args, "--ckpt_path", str(tmp_path / "artifacts" / "training" / "hf_export")])
    last = tmp_path / "artifacts" / "training" / "checkpoints" / "last.ckpt"
    assert last.is_symlink()  # Lightning links last.ckpt to the newest checkpoint
    newest = last.resolve()
    newest.rename(tmp_path / "moved.ckpt")  # the link's file moved away: named, not called missing
    with pytest.raises(FileNotFoundError, match=r"last\.ckpt links to .*step=3\.ckpt, which does not exist"):
        main(["predict", *args, "--data.prompts_path", str(prompts)])
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path best: no .*last\.ckpt to read the best checkpoint"):
        main(["validate", *args, "--ckpt_path", "best"])
    # put back, a fit resumes from the best checkpoint too, where Lightning alone knows none in a new process
    (tmp_path / "moved.ckpt").rename(newest)
    caplog.clear()
    main(["fit", *args, "--ckpt_path", "best", "--trainer.max_steps", "4"])
    steps = [r.getMessage() for r in caplog.records if r.name == "ivr.progress" and "train: step" in r.getMessage()]
    assert steps and steps[0].startswith("train: step 4/4")  # a new fit's first line is step 1


def test_a_checkpoint_of_another_tokenizer_is_refused(tmp_path):
    from ivr.data import IVRDataModule
    from ivr.tokenizers.bpe import offline_gpt2_tokenizer

    dm = IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original")
    dm.paths.original_tokenizer_dir.mkdir(parents=True)
    tok = offline_gpt2_tokenizer()
    tok.save(str(dm.paths.tokenizer_file("original")))
    state = dm.state_dict()
    IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original").load_state_dict(state)
    IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original").load_state_dict({})  # saved without it
    # the file rewritten, every piece at its id (a distillation run again gives other scores): still accepted
    from tokenizers import pre_tokenizers
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.save(str(dm.paths.tokenizer_file("original")))
    IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original").load_state_dict(state)
    # as a new remap does: the same ids, two of them meaning other pieces
    from tokenizers import Tokenizer

    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    vocab["a"], vocab["b"] = vocab["b"], vocab["a"]
    swapped = Tokenizer.from_str(json.dumps(spec))
    assert swapped.get_vocab_size() == tok.get_vocab_size()
    swapped.save(str(dm.paths.tokenizer_file("original")))
    with pytest.raises(ValueError, match="the checkpoint was trained on the original tokenizer's vocabulary .* Run "
                                         "`ivr prepare` with the settings of the fit that wrote it"):
        IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original").load_state_dict(state)
    tok.add_special_tokens(["<|new|>"])
    tok.save(str(dm.paths.tokenizer_file("original")))
    with pytest.raises(ValueError, match="the checkpoint was trained on the original tokenizer's vocabulary"):
        IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original").load_state_dict(state)


def test_resuming_on_a_changed_corpus_warns_that_held_out_text_may_have_been_trained_on(tmp_path, caplog):
    from ivr.data import IVRDataModule
    from ivr.tokenizers.bpe import offline_gpt2_tokenizer

    dm = IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original")
    dm.paths.original_tokenizer_dir.mkdir(parents=True)
    offline_gpt2_tokenizer().save(str(dm.paths.tokenizer_file("original")))
    assert "corpus_fingerprint" not in dm.state_dict()  # no cleaned corpus: nothing recorded
    manifest = dm.paths.cleaned_corpora_dir / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"files": [], "fingerprint": "a"}))
    state = dm.state_dict()
    with caplog.at_level("WARNING", logger="ivr.data"):
        IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original").load_state_dict(state)
        assert "corpus changed" not in caplog.text
        manifest.write_text(json.dumps({"files": [], "fingerprint": "b"}))  # a line inserted into a JSONL file
        IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original").load_state_dict(state)
        assert "the cleaned corpus changed since the checkpoint was written" in caplog.text
        assert "heldout_fraction" not in caplog.text
        IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original", heldout_fraction=0.5).load_state_dict(state)
    assert "trained with data.heldout_fraction 0.05 and this run holds out 0.5" in caplog.text
    # the corpus the fit's blocks were read from: another run cleaning it again meanwhile does not change it
    dm._corpus_at_setup = dm._corpus_fingerprint()
    manifest.write_text(json.dumps({"files": [], "fingerprint": "c"}))
    assert dm.state_dict()["corpus_fingerprint"] == dm._corpus_at_setup != dm._corpus_fingerprint()


def test_predict_without_prompts_says_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="--data.prompts_path"):
        main(["predict", *tiny_cli_args(tmp_path)])


def test_a_stage_rebuilds_when_its_code_changes(tmp_path, monkeypatch):
    import ivr.staging

    main(["init", *tiny_cli_args(tmp_path)])
    main(["analyze", *tiny_cli_args(tmp_path)])
    seq = tmp_path / "artifacts" / "analysis" / "reports" / "bpe_token_id_sequences.txt"
    first = seq.stat().st_mtime_ns
    main(["analyze", *tiny_cli_args(tmp_path)])
    assert seq.stat().st_mtime_ns == first
    monkeypatch.setattr(ivr.staging, "stage_code_fingerprint", lambda fn, root=None: "a newer version")
    main(["analyze", *tiny_cli_args(tmp_path)])
    assert seq.stat().st_mtime_ns != first


def test_a_user_error_from_the_console_is_one_line_and_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["ivr", "predict", *tiny_cli_args(tmp_path)])
    monkeypatch.delenv("IVR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ivr: error: ")]
    assert len(lines) == 1 and "--data.prompts_path" in lines[0] and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["ivr", "predict", "--debug", *tiny_cli_args(tmp_path)])
    with pytest.raises(ValueError, match="--data.prompts_path"):
        main()


def test_align_brings_remap_up_to_date_first_unless_given_its_files(tmp_path, monkeypatch):
    from ivr import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "remap", lambda config: calls.append("remap") or [])  # a remap that writes nothing
    missing = r"no remap rules at .*remap_rules\.yaml: run `ivr remap` \(or `ivr prepare`\) first"
    with pytest.raises(FileNotFoundError, match=missing):
        main(["align", *tiny_cli_args(tmp_path)])
    assert calls == ["remap"]
    with pytest.raises(FileNotFoundError, match=r"elsewhere.remap_rules\.yaml: the folder given as the remapped "
                       r"tokenizer holds none: .* --remap-rules-path FILE"):
        main(["align", *tiny_cli_args(tmp_path), "--remapped-tokenizer-dir", str(tmp_path / "elsewhere")])
    assert calls == ["remap"]
    with pytest.raises(FileNotFoundError, match=r"no remap rules at .*nope\.yaml: no such file \(--remap-rules-path\)"):
        main(["align", *tiny_cli_args(tmp_path), "--remap-rules-path", str(tmp_path / "nope.yaml")])
    assert calls == ["remap"]


def _console_run(monkeypatch, capsys, error: BaseException) -> tuple[int, str]:
    """``ivr prepare`` from the console with ``error`` raised inside: the exit status and what went to stderr."""
    import sys

    import ivr.cli as cli

    def failing(args):
        raise error

    monkeypatch.setattr(cli, "_run", failing)
    monkeypatch.setattr(sys, "argv", ["ivr", "prepare"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code, capsys.readouterr().err


def test_a_disk_error_is_one_line_naming_the_path_and_status_2(monkeypatch, capsys):
    code, err = _console_run(monkeypatch, capsys, OSError(30, "Read-only file system", "/mnt/ro/artifacts"))
    assert code == 2
    assert "ivr: error: [Errno 30] Read-only file system: '/mnt/ro/artifacts'" in err and "Traceback" not in err


def test_an_interrupt_is_one_line_and_status_130(monkeypatch, capsys):
    code, err = _console_run(monkeypatch, capsys, KeyboardInterrupt())
    assert code == 130
    assert "ivr: interrupted; run the same command again" in err and "Traceback" not in err


@pytest.mark.parametrize("given, says", [
    (["--data.heldout_fraction", "abc"], r"data.heldout_fraction: abc is not allowed; expected float\n"),
    (["--data.nonexistent", "1"], r"unrecognized arguments: --data.nonexistent 1"),
    # a union's dump of every subtype, a field of a nested class, an option linked from another: one line each
    (["--data.builtin_corpus", "stdlib"], r"data.builtin_corpus: stdlib is not allowed; expected one of "
                                          r"'python_stdlib' or null\n"),
    (["--data.tokenizer", "foo"], r"data.tokenizer: foo is not allowed; expected one of 'original', 'distilled', "
                                  r"'remapped'\n"),
    (["--model.from_config.n_head", "x"], r"model.from_config.n_head: x is not allowed; expected int\n"),
    (["--checkpoint.dirpath", "/tmp/y"], r"checkpoint.dirpath follows data.artifacts_dir and cannot be set on its "
                                         r"own: set data.artifacts_dir\n"),
    (["--data.base_model_name_or_path", "gpt2"], r"data.base_model_name_or_path follows model.model_name_or_path and "
                                                 r"cannot be set on its own: set model.model_name_or_path\n"),
    # the rows come from where the align stage writes them: no setting of that name
    (["--model.embedding_init", "null"], r"model.embedding_init follows data.embeddings_output_dir and cannot be set "
                                         r"on its own: set data.embeddings_output_dir\n"),
    # an appended list value is the flag's, not the config file's; a class path that does not import, its cause
    (["--data.select.protected_ids+=abc"], r"data.select.protected_ids: abc is not allowed; expected int\n"),
    (["--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStoping"],
     r"trainer.callbacks: lightning.pytorch.callbacks.EarlyStoping: module 'lightning.pytorch.callbacks' has no "
     r"attribute 'EarlyStoping'\n"),
])
def test_a_bad_flag_is_the_parser_s_message_without_the_usage(tmp_path, monkeypatch, capsys, given, says):
    monkeypatch.setattr("sys.argv", ["ivr", "init", "--config", "configs/demo.yaml", *given])
    monkeypatch.delenv("IVR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(r"ivr: error: " + says, err) and "usage:" not in err and "`ivr init --help`" in err


# files and word lists the settings name are checked when they are read, before any stage runs
@pytest.mark.parametrize("given, says", [
    (["--data.select.forced_tokens_path", "/nonexistent/forced.txt"],
     r"/nonexistent/forced.txt: not found \(data.select.forced_tokens_path\)"),
    (["--data.distill.general_languages", "en xx"], r"data.distill.general_languages: wordfreq has no word list for 'xx'"),
    (["--data.select.max_general_longer_pct", "-5"], r"data.select.max_general_longer_pct must be in \[0, 100\]"),
    (["--data.artifacts_dir", __file__], r"data.artifacts_dir .*test_cli.py is a file; name a folder"),
    # values Lightning takes but would fail on at a fit's first training batch, after all of preparation
    (["fit", "--trainer.accumulate_grad_batches", "0"], r"trainer.accumulate_grad_batches must be at least 1 \(got 0\)"),
    (["fit", "--trainer.val_check_interval", "0"], r"trainer.val_check_interval must be at least 1 batch \(got 0\)"),
    (["fit", "--model.train_only", "reassigned_rows", "--data.tokenizer", "distilled"],
     r"model.train_only=reassigned_rows trains the rows the remap reassigned: set data.tokenizer to remapped "
     r"\(it is distilled\)"),
    # a fit that trains nothing would still replace the last export
    (["fit", "--trainer.max_steps", "0"], r"trainer.max_steps 0 trains nothing"),
    (["fit", "--trainer.max_epochs", "0"], r"trainer.max_epochs 0 trains nothing"),
    (["fit", "--trainer.limit_train_batches", "0"], r"trainer.limit_train_batches 0 trains nothing"),
    (["fit", "--trainer.max_steps", "-1", "--trainer.max_epochs", "-1"],
     r"the learning-rate schedule needs the fit's length"),
    (["fit", "--checkpoint.monitor", "val/los"], r"checkpoint.monitor 'val/los' is no metric the fit logs; choose one "
                                                 r"of .*val/loss"),
])
def test_a_bad_setting_is_one_line_before_any_stage_runs(tmp_path, monkeypatch, capsys, given, says):
    command, given = (given[0], given[1:]) if given[0] == "fit" else ("prepare", given)
    monkeypatch.setattr("sys.argv", ["ivr", command, "--data.artifacts_dir", str(tmp_path / "a"), *given])
    monkeypatch.delenv("IVR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert re.search(r"ivr: error: .*" + says, capsys.readouterr().err)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("checkpoint, warns", [
    ({}, True), ({"every_n_train_steps": 100}, False), ({"train_time_interval": "0:30:00"}, False)])
def test_a_fit_without_validation_warns_when_nothing_checkpoints_it_before_its_end(caplog, checkpoint, warns):
    from ivr.commands import check_training_settings

    config = {"data": {"tokenizer": "original"}, "model": {"train_only": "all"},
              "trainer": {"limit_val_batches": 0}, "checkpoint": {"every_n_train_steps": None, **checkpoint}}
    with caplog.at_level("WARNING", logger="ivr.commands"):
        check_training_settings(config)
        assert ("trainer.limit_val_batches 0 turns validation off, and checkpoints come with it" in caplog.text) == warns
        caplog.clear()
        check_training_settings({**config, "trainer": {"limit_val_batches": 2}})
    assert not caplog.text


def test_a_warm_up_longer_than_the_fit_is_named(caplog):
    from ivr.commands import check_training_settings

    config = {"data": {"tokenizer": "original"}, "model": {"train_only": "all", "warmup_steps": 30},
              "trainer": {"max_steps": 20}, "checkpoint": {}}
    with caplog.at_level("WARNING", logger="ivr.commands"):
        check_training_settings(config)
        assert "model.warmup_steps 30 is more than trainer.max_steps 20" in caplog.text
        caplog.clear()
        check_training_settings({**config, "trainer": {"max_steps": 30}})
    assert not caplog.text


@pytest.mark.parametrize("bounds, refused", [
    ({"max_time": "00:00:30:00"}, True),  # Lightning trains without an epoch limit then: the schedule has no length
    ({"max_time": {"minutes": 30}, "max_steps": -1, "max_epochs": None}, True),
    ({"max_time": "00:00:30:00", "max_steps": 100}, False),
    ({"max_time": "00:00:30:00", "max_epochs": 2}, False),
    ({}, False),  # neither: Lightning's 1000 epochs
])
def test_a_fit_bounded_by_time_alone_is_refused_before_the_preparation(bounds, refused):
    """The learning-rate schedule needs the fit's length in steps, which a time limit does not give:
    configure_optimizers would refuse it only after every stage, naming trainer.max_epochs -1, never set."""
    from ivr.commands import check_training_settings

    config = {"data": {"tokenizer": "original"}, "model": {"train_only": "all"},
              "trainer": {"max_steps": -1, "max_epochs": None, **bounds}, "checkpoint": {}}
    if not refused:
        check_training_settings(config)
        return
    with pytest.raises(ValueError, match=r"trainer.max_time alone .* set trainer.max_steps or trainer.max_epochs"):
        check_training_settings(config)


@pytest.mark.parametrize("tokenizer, monitor, refused", [
    ("remapped", "test/loss", True),  # only `ivr test` logs it, never a fit
    ("remapped", "test/bits_per_byte", True),
    ("distilled", "val/loss_reassigned", True),  # no reassigned ids without the remapped tokenizer
    ("original", "val/loss_other", True),
    ("distilled", "embeddings/reassigned_drift", True),
    ("original", "train/reassigned_token_share", True),
    ("remapped", "val/loss_reassigned", False),
    ("remapped", "embeddings/reassigned_relative_drift", False),
    ("distilled", "val/bits_per_byte", False),
    ("original", "train/loss", False),
])
def test_a_monitor_the_fit_never_logs_is_refused_before_it_starts(tokenizer, monitor, refused):
    """ModelCheckpoint fails at the fit's first validation, after the preparation and the first training steps,
    on a monitor no logged metric answers."""
    from ivr.commands import check_training_settings

    config = {"data": {"tokenizer": tokenizer}, "model": {"train_only": "all"}, "trainer": {"max_steps": 10},
              "checkpoint": {"monitor": monitor}}
    if not refused:
        check_training_settings(config)
        return
    with pytest.raises(ValueError, match=rf"checkpoint.monitor '{monitor}' is no metric the fit logs") as err:
        check_training_settings(config)
    choices = str(err.value).partition("choose one of ")[2].split(", ")
    assert "val/loss" in choices and monitor not in choices
    assert not any(c.startswith("test/") for c in choices)
    assert any("reassigned" in c for c in choices) == (tokenizer == "remapped")


def test_every_metric_the_module_logs_can_be_monitored():
    """``LOGGED_METRICS`` (what checkpoint.monitor may name) holds every name the module passes to self.log."""
    import ast
    import inspect

    from ivr import model
    from ivr.model import LOGGED_METRICS

    logged = set()
    for node in ast.walk(ast.parse(inspect.getsource(model))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "log" and node.args:
            name = node.args[0]
            if isinstance(name, ast.Constant):
                logged.add(name.value)
            else:  # f"{split}/loss": validation and test
                assert isinstance(name, ast.JoinedStr)
                rest = "".join(v.value for v in name.values if isinstance(v, ast.Constant))
                logged.update(f"{split}{rest}" for split in ("val", "test"))
    assert len(logged) > 10 and logged == LOGGED_METRICS


@pytest.mark.parametrize("command, key", [("validate", "limit_val_batches"), ("test", "limit_test_batches"),
                                          ("predict", "limit_predict_batches")])
def test_scoring_nothing_is_refused(tmp_path, monkeypatch, capsys, command, key):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def f(\n", encoding="utf-8")
    monkeypatch.setattr("sys.argv", ["ivr", command, "--data.artifacts_dir", str(tmp_path / "a"), f"--trainer.{key}",
                                     "0", *(["--data.prompts_path", str(prompts)] if command == "predict" else [])])
    monkeypatch.delenv("IVR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert f"ivr: error: trainer.{key} 0 leaves ivr {command} nothing to run" in capsys.readouterr().err


def test_an_empty_ckpt_path_or_folder_is_named(tmp_path):
    from ivr.paths import ArtifactPaths
    from ivr.run_checkpoint import check_local_checkpoint

    paths = ArtifactPaths.from_config(tmp_path / "artifacts")
    with pytest.raises(ValueError, match="--ckpt_path is empty"):
        check_local_checkpoint(paths, "")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path .*empty is an empty folder, not a checkpoint"):
        check_local_checkpoint(paths, str(tmp_path / "empty"))


@pytest.mark.parametrize("trained, now, refused", [("original", "remapped", True), ("remapped", "distilled", True),
                                                   ("original", "distilled", False)])
def test_a_resume_on_the_other_side_of_the_remap_is_refused_before_the_stages(tmp_path, trained, now, refused):
    """The tokenizer is not built yet, so its vocabulary cannot be compared: the names can (the original and
    distilled tokenizers share every id)."""
    import torch

    from ivr.data import IVRDataModule

    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "IVRDataModule": {"tokenizer": trained, "vocabulary_sha256": "0" * 64}}, ckpt)
    dm = IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), tokenizer=now)
    if refused:
        with pytest.raises(ValueError, match=rf"was trained on the {trained} tokenizer, .* set data.tokenizer to {trained}"):
            dm.keep_checkpoint_tokenizer(str(ckpt), "fit")
    else:
        dm.keep_checkpoint_tokenizer(str(ckpt), "fit")


@pytest.mark.parametrize("text", ["data:\n  block_size: [1, 2\n", "data:\n  heldout_fracton: 0.1\n",
                                  "data:\n  block_size: big\n", "", "# data:\n#   block_size: 64\n", "- data\n",
                                  "data:\n  text_key: t\xe9xte\n".encode("latin-1")])
def test_a_broken_config_file_is_named(tmp_path, monkeypatch, capsys, text):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    monkeypatch.delenv("IVR_DEBUG", raising=False)
    for given in (["--config", str(bad)], ["-c", str(bad)], [f"--config={bad}"]):
        monkeypatch.setattr("sys.argv", ["ivr", "init", *given])
        with pytest.raises(SystemExit):
            main()
        assert f"ivr: error: {bad}: " in capsys.readouterr().err, given


def test_a_trainer_that_trained_in_this_process_scores_the_weights_it_holds(tmp_path, monkeypatch):
    from ivr.commands import IVRTrainer
    from ivr.data import IVRDataModule

    trainer = IVRTrainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    dm = IVRDataModule(artifacts_dir=str(tmp_path))
    # fresh (the CLI's validate and test): the last fit's checkpoint, which needs the fit's artifacts
    with pytest.raises(FileNotFoundError, match="no tokenizer at"):
        trainer._checkpoint("validate", None, dm, None)
    assert trainer._checkpoint("validate", None, None, None) is None  # no data module: Lightning's own rules
    monkeypatch.setattr(IVRTrainer, "global_step", property(lambda self: 3))
    assert trainer._checkpoint("validate", None, dm, None) is None


def test_an_interrupted_fit_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import signal

    from ivr.model import IVRLanguageModel

    monkeypatch.chdir(tmp_path)

    step = IVRLanguageModel.training_step
    stop = {"at": 0}

    def interrupted(self, batch, batch_idx):
        if self.global_step >= stop["at"]:
            raise KeyboardInterrupt
        return step(self, batch, batch_idx)

    monkeypatch.setattr(IVRLanguageModel, "training_step", interrupted)
    args = [*tiny_cli_args(tmp_path), "--trainer.max_steps", "4", "--trainer.val_check_interval", "2",
            "--trainer.limit_val_batches", "1"]
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exc:
            main(["fit", *args])
        assert exc.value.code == 130
        # nothing of this fit saved yet: resuming would take up an earlier fit's last.ckpt
        assert "interrupted before this fit's first checkpoint" in capsys.readouterr().err
        stop["at"] = 3  # after the checkpoint at step 2
        with pytest.raises(SystemExit) as exc:
            main(["fit", *args])
        assert exc.value.code == 130
        assert "run the same command with `--ckpt_path last` to resume" in capsys.readouterr().err
        # without last.ckpt the checkpoint this fit wrote is the one to name
        (tmp_path / "artifacts" / "training" / "checkpoints" / "last.ckpt").unlink()
        with pytest.raises(SystemExit) as exc:
            main(["fit", *args, "--checkpoint.save_last", "false"])
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C while it shuts down
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert "checkpoint.save_last is off" in err and re.search(r"--ckpt_path \S*step=2\.ckpt", err), err


@pytest.mark.parametrize("command", ["validate", "test", "predict"])
def test_an_interrupted_scoring_command_is_one_line_and_status_130(tmp_path, monkeypatch, capsys, command):
    import signal
    import sys

    import ivr.cli as cli
    from ivr import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    main(["init", *tiny_cli_args(tmp_path)])  # the tokenizer that --ckpt_path base scores with
    # Ctrl-C while the command prepares its data, where Lightning catches it and exits with status 1
    monkeypatch.setattr(pipeline, "prepare", interrupted)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def f():\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["ivr", command, *tiny_cli_args(tmp_path), "--ckpt_path", "base",
                                      "--data.prompts_path", str(prompts)])
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main()
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C while it shuts down
    assert exc.value.code == 130
    assert "ivr: interrupted; run the same command again" in capsys.readouterr().err


def test_ctrl_c_while_the_libraries_load_is_one_line(monkeypatch, capsys):
    import sys
    import types

    from ivr import entry

    class Loading(types.ModuleType):
        def __getattr__(self, name):  # as if Ctrl-C came while `ivr.cli` imported Lightning
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "ivr.cli", Loading("ivr.cli"))
    with pytest.raises(SystemExit) as exc:
        entry.main()
    assert exc.value.code == 130 and "ivr: interrupted while starting" in capsys.readouterr().err


def test_the_console_module_runs_as_a_script():
    import subprocess
    import sys

    # `python -m ivr.entry` is what the `ivr` script calls: it must run the command line, not return silently
    done = subprocess.run([sys.executable, "-m", "ivr.entry", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "distils the BPE tokenizer" in done.stdout, done.stderr[-2000:]


def test_a_value_a_model_shape_refuses_is_its_own_line(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["ivr", "init", "--config", "configs/demo.yaml", "--model.from_config.n_layer", "0"])
    monkeypatch.delenv("IVR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "ivr: error: model.from_config.n_layer must be at least 1, got 0\n" in err
    assert "Union" not in err


@pytest.mark.parametrize("key, value, says", [
    ("n_head", "abc", "model.from_config.n_head: abc is not allowed; expected int"),
    ("architecture", "gpt3", "model.from_config.architecture: gpt3 is not allowed; expected one of 'gpt2', 'llama'"),
    ("n_inner", "wide", "model.from_config.n_inner: wide is not allowed; expected int or null"),
    ("n_heads", "2", "model.from_config does not accept option 'n_heads'"),
])
def test_a_model_shape_key_s_error_names_the_key_and_the_value_in_a_file_and_as_a_flag(tmp_path, monkeypatch, capsys,
                                                                                         key, value, says):
    config = tmp_path / "shape.yaml"
    config.write_text(f"model:\n  from_config:\n    {key}: {value}\n", encoding="utf-8")
    monkeypatch.delenv("IVR_DEBUG", raising=False)
    for given, where in ((["--config", str(config)], f"{config}: "), ([f"--model.from_config.{key}", value], "")):
        monkeypatch.setattr("sys.argv", ["ivr", "init", *given])
        with pytest.raises(SystemExit) as exc:
            main()
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"ivr: error: {where}{says}\n" in err, given


def test_an_unknown_command_points_at_the_list_of_commands(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["ivr", "preapre", "--config", "configs/demo.yaml"])
    monkeypatch.delenv("IVR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "invalid choice: 'preapre'" in err and "(`ivr --help` lists every option)" in err




@pytest.mark.parametrize("text, says", [
    ("data:\n  base_model_name_or_path: gpt2-medium\n",
     "data.base_model_name_or_path follows model.model_name_or_path and cannot be set on its own: "
     "set model.model_name_or_path"),
    ("checkpoint:\n  dirpath: /tmp/elsewhere\n", "checkpoint.dirpath follows data.artifacts_dir"),
    ("model:\n  embedding_init: null\n", "model.embedding_init follows data.embeddings_output_dir and cannot be "
     "set on its own: set data.embeddings_output_dir"),
])
def test_a_linked_key_in_a_config_file_is_refused_not_dropped(tmp_path, monkeypatch, capsys, text, says):
    config = tmp_path / "linked.yaml"
    config.write_text(text, encoding="utf-8")
    section, _, rest = text.partition(":\n")
    forms = {"--config": ["--config", str(config)], "--config=": [f"--config={config}"]}
    for form, given in forms.items():
        monkeypatch.setattr("sys.argv", ["ivr", "prepare", "--data.artifacts_dir", str(tmp_path / "a"), *given])
        monkeypatch.delenv("IVR_DEBUG", raising=False)
        with pytest.raises(SystemExit) as exc:
            main()
        assert exc.value.code == 2
        assert f"ivr: error: {config}: {says}" in capsys.readouterr().err, form
        assert not (tmp_path / "a").exists()
    # a section's own file (`--data FILE`) holds the section's keys
    own = tmp_path / "section.yaml"
    own.write_text("\n".join(line.strip() for line in rest.splitlines()) + "\n", encoding="utf-8")
    monkeypatch.setattr("sys.argv", ["ivr", "prepare", "--data.artifacts_dir", str(tmp_path / "a"), f"--{section}",
                                     str(own)])
    with pytest.raises(SystemExit):
        main()
    assert f"ivr: error: {own}: {says}" in capsys.readouterr().err


def test_a_block_longer_than_a_local_pretrained_model_s_context_stops_prepare_before_any_stage(tmp_path):
    from ivr.causal_lm import ModelShape, build_model

    pretrained = tmp_path / "pretrained"
    build_model(ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16)).save_pretrained(pretrained)
    args = tiny_cli_args(tmp_path, "--model.from_config", "null", "--model.model_name_or_path", str(pretrained))
    with pytest.raises(ValueError, match="data.block_size 32 is longer than the model's context of 16 tokens"):
        main(["prepare", *args])
    assert not (tmp_path / "artifacts" / "corpora" / "cleaned").exists()


@pytest.mark.parametrize("command", ["fit", "validate"])
def test_a_block_longer_than_a_local_pretrained_model_s_context_stops_a_checkpoint_s_run_before_packing(
        tmp_path, monkeypatch, command):
    """With a checkpoint's tokenizer on disk no stage runs, only the packing: a block the model cannot take is
    refused before it, as `ivr prepare` refuses it before the stages."""
    import torch

    from ivr import pipeline
    from ivr.causal_lm import ModelShape, build_model
    from ivr.data import IVRDataModule

    pretrained = tmp_path / "pretrained"
    build_model(ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16)).save_pretrained(pretrained)
    data = IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), base_model_name_or_path=str(pretrained),
                         block_size=32)
    tokenizer = data.paths.tokenizer_file(data.hparams.tokenizer)
    tokenizer.parent.mkdir(parents=True)
    tokenizer.write_text("{}")
    torch.save({"state_dict": {}}, tmp_path / "step.ckpt")
    data.keep_checkpoint_tokenizer(str(tmp_path / "step.ckpt"), command)
    monkeypatch.setattr(pipeline, "build_datasets", lambda *args: pytest.fail("packed blocks the model cannot take"))
    monkeypatch.setattr(pipeline, "clean", lambda *args: None)
    with pytest.raises(ValueError, match="data.block_size 32 is longer than the model's context of 16 tokens"):
        data.prepare_data()


def test_export_of_a_bf16_fit_s_checkpoint_writes_its_weights_in_bfloat16(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = tiny_cli_args(tmp_path, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
                         "--trainer.limit_val_batches", "1", "--model.from_config.n_layer", "1",
                         "--trainer.precision", "bf16-true")
    config = tmp_path / "artifacts" / "training" / "hf_export" / "config.json"
    main(["fit", *args])
    assert json.loads(config.read_text())["dtype"] == "bfloat16"
    # the checkpoint's weights are loaded into a float32 model: exported as they were trained, not widened
    main(["export", *args, "--ckpt_path", "last"])
    assert json.loads(config.read_text())["dtype"] == "bfloat16"


def test_a_tokenizer_with_more_ids_than_a_local_model_has_rows_stops_prepare_before_distilling(tmp_path):
    from ivr.causal_lm import ModelShape, build_model

    pretrained = tmp_path / "pretrained"
    build_model(ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=64, vocab_size=1000)).save_pretrained(pretrained)
    args = tiny_cli_args(tmp_path, "--model.from_config", "null", "--model.model_name_or_path", str(pretrained))
    with pytest.raises(ValueError, match=r"original has 50257 ids but the model has 1000 token rows"):
        main(["prepare", *args])
    assert (tmp_path / "artifacts" / "tokenizers" / "original").is_dir()  # after init: the tokenizer is read
    assert not (tmp_path / "artifacts" / "analysis").exists()  # before analyze and distillation


def test_a_checkpoint_flag_is_known_in_every_spelling_argparse_accepts():
    from ivr.cli import _is_ckpt_flag

    assert all(map(_is_ckpt_flag, ["--ckpt_path", "--ckpt_path=base", "--ckpt", "--ckpt_pat=x"]))
    assert not any(map(_is_ckpt_flag, ["--config", "--ckpt_paths", "--c", "--checkpoint.dirpath", "base"]))


def test_a_remote_checkpoint_is_left_to_lightning_and_a_missing_local_one_is_named(tmp_path):
    """Only local files are checked before the stages run: a URL or a model registry's name is Lightning's to fetch."""
    from ivr.run_checkpoint import check_local_checkpoint
    from ivr.paths import ArtifactPaths

    paths = ArtifactPaths.from_config(tmp_path / "artifacts")
    for remote in ("s3://bucket/run/last.ckpt", "registry:team/model:latest", "hpc"):
        check_local_checkpoint(paths, remote)
    with pytest.raises(FileNotFoundError, match=r"--ckpt_path .*gone\.ckpt: no such checkpoint file"):
        check_local_checkpoint(paths, str(tmp_path / "gone.ckpt"))


def test_a_checkpoint_under_the_home_folder_is_checked_and_read_where_lightning_reads_it(tmp_path, monkeypatch):
    """A leading ``~`` (a config file's ckpt_path, or ``--ckpt_path=~/...``, which the shell leaves as it is) is the
    home folder, as for Lightning's file system: the file there is checked, not called missing."""
    import torch

    from ivr.data import IVRDataModule
    from ivr.run_checkpoint import run_checkpoint

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    saved = tmp_path / "home" / "runs" / "weights.ckpt"
    saved.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, saved)  # weights only: no optimizer state to resume from
    with pytest.raises(ValueError, match=r"weights\.ckpt holds the weights only"):
        main(["fit", *tiny_cli_args(tmp_path), "--ckpt_path=~/runs/weights.ckpt"])
    data = IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"))
    tokenizer = data.paths.tokenizer_file(data.hparams.tokenizer)
    tokenizer.parent.mkdir(parents=True)
    tokenizer.write_text("{}")
    assert run_checkpoint("validate", data, "~/runs/weights.ckpt") == str(saved)


def test_a_folder_holding_an_export_s_weights_alone_is_named_as_no_lightning_checkpoint(tmp_path):
    from ivr.run_checkpoint import check_local_checkpoint
    from ivr.paths import ArtifactPaths

    folder = tmp_path / "copied_export"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"copied_export is a Hugging Face model folder \(an export\)"):
        check_local_checkpoint(ArtifactPaths.from_config(tmp_path / "artifacts"), str(folder))


def test_the_best_checkpoint_is_the_one_the_fit_recorded_and_a_gone_or_unrecorded_one_is_named(tmp_path):
    """``--ckpt_path best`` reads ``best_model_path`` from the callbacks' state in last.ckpt; other callbacks' states
    and an empty path (no monitor, nothing kept) record none."""
    import torch

    from ivr.run_checkpoint import best_checkpoint

    last, best = tmp_path / "last.ckpt", tmp_path / "epoch=0-step=3.ckpt"

    def recorded(path: str) -> None:
        torch.save({"state_dict": {}, "callbacks": {"EarlyStopping{'monitor': 'val/loss'}": {"wait_count": 0},
                                                    "ModelCheckpoint{'monitor': None}": {"best_model_path": path}}},
                   last)

    recorded(str(best))
    with pytest.raises(FileNotFoundError, match=r"kept no best checkpoint \(.*step=3\.ckpt is gone\); set "
                                                r"checkpoint\.monitor"):
        best_checkpoint(last)
    best.write_bytes(b"")
    assert best_checkpoint(last) == str(best)
    recorded("")
    with pytest.raises(FileNotFoundError, match=r"kept no best checkpoint \(none recorded\)"):
        best_checkpoint(last)


def test_the_best_checkpoint_of_a_moved_artifact_tree_is_found_beside_last_ckpt(tmp_path):
    """ModelCheckpoint records the best checkpoint by its absolute path: after the tree is moved (another disk, a
    folder mounted elsewhere) the file is the one of that name beside last.ckpt, not gone."""
    import torch

    from ivr.run_checkpoint import best_checkpoint

    old, new = tmp_path / "old" / "checkpoints", tmp_path / "new" / "checkpoints"
    new.mkdir(parents=True)
    (new / "epoch=0-step=3.ckpt").write_bytes(b"")
    torch.save({"state_dict": {}, "callbacks": {"ModelCheckpoint{'monitor': 'val/loss'}": {
        "best_model_path": str(old / "epoch=0-step=3.ckpt")}}}, new / "last.ckpt")
    assert best_checkpoint(new / "last.ckpt") == str(new / "epoch=0-step=3.ckpt")


def test_init_flags_given_as_false_override_a_config_that_sets_them(capsys):
    """``ivr init --force false`` (or an empty ``--text-key``) is the user's value, not a flag left out."""
    from types import SimpleNamespace

    from ivr.commands import IVRTrainer

    ran = []
    datamodule = SimpleNamespace(hparams={"force": True, "normalize_force": True, "text_key": "text"},
                                 run_stage=lambda name: ran.append(name) or [])
    IVRTrainer.init(None, None, datamodule, force=False, normalize_force=False, text_key="")
    assert datamodule.hparams == {"force": False, "normalize_force": False, "text_key": ""} and ran == ["init"]


def test_only_a_checkpoint_s_load_error_is_reworded_and_other_errors_keep_their_traceback():
    """A state dict that does not fit becomes one line naming the checkpoint; any other error (a bug in training
    code, a device out of memory) and a load without a checkpoint are raised as they are."""
    from ivr.commands import _weights_fit

    mismatch = "Error(s) in loading state_dict for GPT2LMHeadModel:\n\tsize mismatch for w: copying a param."
    with pytest.raises(ValueError, match=r"^run\.ckpt: its weights do not fit the configured model \(size mismatch "
                                         r"for w: copying a param\); do this$"), _weights_fit("run.ckpt", "do this"):
        raise RuntimeError(mismatch)
    with pytest.raises(RuntimeError, match="out of memory"), _weights_fit("run.ckpt", "do this"):
        raise RuntimeError("CUDA out of memory")
    with pytest.raises(RuntimeError, match="size mismatch"), _weights_fit(None, "do this"):
        raise RuntimeError(mismatch)


def test_version_names_ivr_and_the_libraries_it_runs_on_on_one_line(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    out = capsys.readouterr().out
    assert exit_.value.code in (0, None) and out.count("\n") == 1
    assert out.startswith(f"ivr {importlib.metadata.version('ivr')} (Python ")
    for library in ("torch", "lightning", "transformers", "tokenizers"):
        assert f"{library} {importlib.metadata.version(library)}" in out
