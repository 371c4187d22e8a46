"""A damaged artifact is named in a clear error or fetched and built again, never trusted or met by a traceback."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from ivr.embeddings import load_final_embeddings
from ivr.checkpoints import readable_checkpoint
from ivr.tokenizers.io import load_tokenizer, read_metadata, save_tokenizer_dir
from ivr.tokenizers.source import fetch_original_tokenizer


def truncate(path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_a_truncated_tokenizer_file_is_named(tmp_path, gpt2_bpe):
    save_tokenizer_dir(gpt2_bpe, tmp_path / "tok", {"stage": "test"})
    truncate(tmp_path / "tok" / "tokenizer.json", 1000)
    with pytest.raises(ValueError, match=r"tok/tokenizer\.json: not a tokenizer file"):
        load_tokenizer(tmp_path / "tok")


def test_damaged_metadata_is_named(tmp_path, gpt2_bpe):
    save_tokenizer_dir(gpt2_bpe, tmp_path / "tok", {"stage": "test"})
    truncate(tmp_path / "tok" / "ivr_metadata.json", 20)
    with pytest.raises(ValueError, match=r"ivr_metadata\.json: not valid JSON"):
        read_metadata(tmp_path / "tok")
    (tmp_path / "tok" / "ivr_metadata.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ivr_metadata\.json: not a JSON object"):
        read_metadata(tmp_path / "tok")
    with pytest.raises(FileNotFoundError, match="ivr_metadata.json"):
        read_metadata(tmp_path / "elsewhere", required=True)
    assert read_metadata(tmp_path / "elsewhere") == {}


def test_a_damaged_original_tokenizer_is_fetched_again(tmp_path, caplog):
    target = tmp_path / "original"
    fetch_original_tokenizer(target, "gpt2", allow_hub=False)
    good = (target / "tokenizer.json").read_bytes()
    truncate(target / "tokenizer.json", 500)
    with caplog.at_level("WARNING"):
        fetch_original_tokenizer(target, "gpt2", allow_hub=False)
    assert "fetching the original tokenizer again" in caplog.text
    assert (target / "tokenizer.json").read_bytes() == good


def test_truncated_embedding_rows_are_named(tmp_path):
    wte = tmp_path / "final_wte.pt"
    torch.save(torch.zeros(4, 3), wte)
    truncate(wte, 100)
    with pytest.raises(ValueError, match=r"final_wte\.pt: unreadable embedding rows"):
        load_final_embeddings(wte, tmp_path / "final_lm_head.pt")
    # a readable file of something else: the same line, not an AttributeError where the rows are used
    for other, held in (({"weight": torch.zeros(4, 3)}, "dict"), (torch.zeros(3), r"Tensor of shape \(3,\)")):
        torch.save(other, wte)
        with pytest.raises(ValueError, match=rf"final_wte\.pt: unreadable embedding rows \(it holds {held}, not a"):
            load_final_embeddings(wte, tmp_path / "final_lm_head.pt")


def test_a_truncated_checkpoint_is_named_before_anything_loads_it(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    assert zipfile.is_zipfile(ckpt) and readable_checkpoint(ckpt) == ckpt
    truncate(ckpt, ckpt.stat().st_size // 2)
    with pytest.raises(ValueError, match=r"last\.ckpt: not a readable checkpoint"):
        readable_checkpoint(ckpt)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*none\.ckpt"):
        readable_checkpoint(tmp_path / "none.ckpt")
    (tmp_path / "text.ckpt").write_text(json.dumps({"state_dict": {}}))
    with pytest.raises(ValueError, match=r"text\.ckpt: not a readable checkpoint"):
        readable_checkpoint(tmp_path / "text.ckpt")


def test_a_checkpoint_damaged_inside_is_named_not_loaded_as_other_weights(tmp_path):
    ckpt = tmp_path / "damaged.ckpt"
    torch.save({"state_dict": {"w": torch.arange(4096, dtype=torch.float32)}}, ckpt)
    data = bytearray(ckpt.read_bytes())
    start = data.index(torch.arange(4096, dtype=torch.float32).numpy().tobytes()[:64])
    data[start + 1000 : start + 2000] = bytes(1000)  # zeros in the middle of the tensor: the zip still opens
    ckpt.write_bytes(bytes(data))
    assert not torch.equal(torch.load(ckpt, weights_only=True)["state_dict"]["w"], torch.arange(4096.0))
    with pytest.raises(ValueError, match=r"damaged\.ckpt: not a readable checkpoint"):
        readable_checkpoint(ckpt)


def test_a_checkpoint_saved_without_crcs_is_read(tmp_path):
    ckpt = tmp_path / "nocrc.ckpt"
    torch.serialization.set_crc32_options(False)  # a documented torch option: members stored without a CRC
    try:
        torch.save({"state_dict": {"w": torch.arange(4096, dtype=torch.float32)}}, ckpt)
    finally:
        torch.serialization.set_crc32_options(True)
    assert {m.CRC for m in zipfile.ZipFile(ckpt).infolist()} == {0}
    assert readable_checkpoint(ckpt) == ckpt


def test_a_checkpoint_is_read_through_once_per_version_of_the_file(tmp_path, monkeypatch):
    """Checking every member's CRC reads the whole file (gigabytes for a large model): once per process, and
    again only when the file changes."""
    import ivr.checkpoints as checkpoints

    passes = []
    check = checkpoints._members_match_their_crcs
    monkeypatch.setattr(checkpoints, "_members_match_their_crcs", lambda archive: passes.append(1) or check(archive))
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    readable_checkpoint(ckpt)
    readable_checkpoint(ckpt)
    assert len(passes) == 1
    torch.save({"state_dict": {"w": torch.zeros(8)}}, ckpt)
    readable_checkpoint(ckpt)
    assert len(passes) == 2


def test_a_file_that_is_not_a_lightning_checkpoint_is_named(tmp_path):
    from ivr.checkpoints import lightning_checkpoint

    tensor = tmp_path / "final_wte.pt"
    torch.save(torch.zeros(3, 2), tensor)
    with pytest.raises(ValueError, match=r"final_wte\.pt is not a Lightning checkpoint \(it holds Tensor"):
        lightning_checkpoint(tensor)
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    assert lightning_checkpoint(ckpt) == ckpt


def test_a_damaged_export_record_does_not_block_the_next_export(tmp_path):
    from ivr.export import EXPORT_METADATA_FILE, export_step

    record = tmp_path / EXPORT_METADATA_FILE
    assert export_step(tmp_path) is None
    for text, step in (('{"step": 5}', 5), ('{"st', None), ("[1]", None), ('{"step": "5"}', None)):
        record.write_text(text)
        assert export_step(tmp_path) == step


def test_a_damaged_packed_dataset_is_named(tmp_path, monkeypatch):
    from datasets import Dataset, DatasetDict

    from ivr import data
    from ivr.packing import BYTES_COLUMN, IDS_COLUMN, SPLIT_SOURCES

    packed = tmp_path / "datasets" / "remapped-0123"
    rows = {IDS_COLUMN: [[1, 2, 3]] * 64, BYTES_COLUMN: [3] * 64}
    DatasetDict({split: Dataset.from_dict(rows) for split in SPLIT_SOURCES}).save_to_disk(str(packed))
    for arrow in packed.rglob("*.arrow"):
        truncate(arrow, 64)
    monkeypatch.setattr(data.pipeline, "dataset_dir", lambda *a: packed)
    module = data.IVRDataModule(artifacts_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"remapped-0123: the packed dataset cannot be read"):
        module.setup("fit")


def test_a_cleaned_file_changed_since_cleaning_is_cleaned_again(tmp_path, raw_dir, caplog):
    from ivr.cleaned_corpus import CorpusError, corpus_content
    from ivr.corpus import CleaningOptions, clean_corpus

    cleaned = tmp_path / "cleaned"
    clean_corpus(raw_dir, cleaned, CleaningOptions())
    files = sorted(p for p in cleaned.rglob("*.jsonl"))
    good = {p: p.read_bytes() for p in files}
    before = {p: p.stat().st_mtime_ns for p in files}
    clean_corpus(raw_dir, cleaned, CleaningOptions())  # unchanged: reused, not written again
    assert {p: p.stat().st_mtime_ns for p in files} == before
    truncate(files[0], 5)
    # a stage reading the changed files would stamp its outputs with the manifest's hash, which cleaning again
    # gives too: refused, where only cleaning again makes the corpus whole
    with pytest.raises(CorpusError, match="the cleaned files changed since manifest.json was written.*ivr init"):
        corpus_content(cleaned)
    with caplog.at_level("WARNING"):
        clean_corpus(raw_dir, cleaned, CleaningOptions())
    assert "changed since they were written" in caplog.text
    assert {p: p.read_bytes() for p in files} == good
    assert corpus_content(cleaned)


def test_a_packed_dataset_cut_short_or_thinned_since_is_packed_again(tmp_path, caplog):
    from ivr.cli import main
    from ivr.packing import packed_damage, read_packed_splits
    from tests.conftest import tiny_cli_args

    args = tiny_cli_args(tmp_path)
    main(["prepare", *args])
    (packed,) = (tmp_path / "artifacts" / "datasets").glob("original-*")
    arrow = next(packed.rglob("*.arrow"))
    intact = arrow.read_bytes()
    assert packed_damage(packed) is None
    truncate(arrow, 64)  # a copy cut short: read, it fails only once the fit reaches it
    assert "bytes, not the" in packed_damage(packed)
    with caplog.at_level("WARNING", logger="ivr.pipeline"):
        main(["prepare", *args])
    assert "packing it again" in caplog.text and arrow.read_bytes() == intact
    read_packed_splits(packed)
    caplog.clear()
    (packed / "dataset_dict.json").unlink()
    with caplog.at_level("WARNING", logger="ivr.pipeline"):
        main(["prepare", *args])
    assert "dataset_dict.json is missing; packing it again" in caplog.text
    read_packed_splits(packed)
