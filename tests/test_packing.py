"""Packing documents into blocks: every token kept in order, the end-of-text id after each document, and the
byte count of each block's predicted tokens."""

from __future__ import annotations

import numpy as np
import pytest

from ivr.packing import (
    BYTES_COLUMN, IDS_COLUMN, TRAIN_SPLIT, VALIDATION_SPLIT, encoded_batches, leading_blocks, pack_blocks,
    read_packed_splits, token_byte_lengths, write_packed_splits,
)
from ivr.tokenizers.byte_level import EOS_ID, piece_to_bytes

TEXTS = [f"def f{i}(x):\n    return x * {i}  # document {i}\n" for i in range(12)] + ["Hello world, plain English."]


def encoded(tok, train, validation):
    return {"train": encoded_batches(tok, train), "validation": encoded_batches(tok, validation)}


def stream(tok, texts, eos_id):
    return np.concatenate([np.asarray(e.ids + [eos_id]) for e in tok.encode_batch(texts, add_special_tokens=False)])


@pytest.mark.parametrize("docs_per_batch", [1, 5, 256])
def test_blocks_keep_every_token_in_order_with_eos_after_each_document(gpt2_bpe, docs_per_batch):
    batches = list(pack_blocks(gpt2_bpe, iter(TEXTS), 16, EOS_ID, docs_per_batch))
    blocks = np.concatenate([b for b, _ in batches])
    expected = stream(gpt2_bpe, TEXTS, EOS_ID)
    assert blocks.dtype == np.int64 and blocks.shape == (len(expected) // 16, 16)
    assert np.array_equal(blocks.reshape(-1), expected[: blocks.size])  # only the tail shorter than a block is dropped


def test_the_end_of_text_id_is_a_parameter(gpt2_bpe):
    texts = ["ab", "cd", "ef"]
    (blocks, _), = pack_blocks(gpt2_bpe, texts, 2, eos_id=7)
    assert blocks.reshape(-1).tolist() == [i for e in gpt2_bpe.encode_batch(texts) for i in e.ids + [7]]


def test_byte_counts_are_the_utf8_length_of_the_predicted_tokens(gpt2_bpe):
    for blocks, counts in pack_blocks(gpt2_bpe, TEXTS, 16, EOS_ID, docs_per_batch=4):
        assert counts.dtype == np.int64 and counts.shape == (len(blocks),)
        for block, n in zip(blocks, counts):
            # the end-of-text id stands for no text: it counts no bytes
            assert n == len(gpt2_bpe.decode(block[1:].tolist()).encode("utf-8"))


def test_token_byte_lengths_count_the_bytes_of_each_piece(gpt2_bpe):
    lengths = token_byte_lengths(gpt2_bpe, EOS_ID)
    assert len(lengths) == gpt2_bpe.get_vocab_size()
    for i in (0, 220, 1212, 31204):
        assert lengths[i] == len(piece_to_bytes(gpt2_bpe.id_to_token(i))) > 0
    assert lengths[EOS_ID] == 0


def test_the_separator_counts_no_bytes_whatever_its_text_and_added_tokens_their_text():
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.BPE({"a": 0, "b": 1}, []))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.add_special_tokens([AddedToken("<|end_of_text|>", special=True), AddedToken("<｜end▁of▁sentence｜>", special=True)])
    lengths = token_byte_lengths(tok, 2)
    assert lengths.tolist() == [1, 1, 0, len("<｜end▁of▁sentence｜>".encode())]


def test_documents_are_encoded_without_the_tokens_a_template_adds(gpt2_bpe):
    """A tokenizer whose post-processor puts a bos before each text (Llama, SmolLM2) must not put it before each
    document: documents are joined by the separator alone."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer.from_str(gpt2_bpe.to_str())
    tok.post_processor = TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", EOS_ID)])
    assert tok.encode(TEXTS[0]).ids[0] == EOS_ID
    (docs, _), = encoded_batches(tok, TEXTS[:3])
    assert [d.tolist() for d in docs] == [e.ids for e in gpt2_bpe.encode_batch(TEXTS[:3], add_special_tokens=False)]


def test_each_batch_gives_its_documents_size_in_utf8_bytes(gpt2_bpe):
    """The size advances the progress bar, whose total is the corpus's size in bytes."""
    texts = ["héllo wörld", "ab", "日本語"]
    sizes = [size for _, size in encoded_batches(gpt2_bpe, texts, docs_per_batch=2)]
    assert sizes == [len(texts[0].encode()) + len(texts[1].encode()), len(texts[2].encode())]


def test_documents_are_read_one_batch_at_a_time(gpt2_bpe):
    read = []

    def documents():
        for text in TEXTS:
            read.append(text)
            yield text

    batches = pack_blocks(gpt2_bpe, documents(), 8, EOS_ID, docs_per_batch=3)
    next(batches)
    assert len(read) == 3


def test_packed_splits_are_saved_as_a_dataset_and_read_back(gpt2_bpe, tmp_path):
    from datasets import Dataset, DatasetDict

    write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, TEXTS[:4]), 16, tmp_path / "packed", EOS_ID)
    saved = read_packed_splits(tmp_path / "packed")
    blocks, counts = zip(*pack_blocks(gpt2_bpe, TEXTS, 16, EOS_ID))
    assert np.array_equal(np.asarray(saved[TRAIN_SPLIT][IDS_COLUMN]), np.concatenate(blocks))
    assert np.array_equal(np.asarray(saved[TRAIN_SPLIT][BYTES_COLUMN]), np.concatenate(counts))
    assert len(saved[VALIDATION_SPLIT]) > 0
    # a folder of other splits or columns, or of one dataset, is named as damaged, not read half
    rows = {IDS_COLUMN: [[1, 2]], BYTES_COLUMN: [2]}
    DatasetDict({TRAIN_SPLIT: Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "one_split"))
    DatasetDict({TRAIN_SPLIT: Dataset.from_dict(rows), VALIDATION_SPLIT: Dataset.from_dict({IDS_COLUMN: [[1, 2]]})}
                ).save_to_disk(str(tmp_path / "no_bytes"))
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "one_dataset"))
    for name, says in (("one_split", "no 'validation' split"), ("no_bytes", "no 'validation' split with the columns"),
                       ("one_dataset", "one dataset, not a dict of splits"), ("missing", "")):
        with pytest.raises(ValueError, match=rf"{name}: the packed dataset cannot be read \(.*{says}.*delete this"):
            read_packed_splits(tmp_path / name)


def test_the_record_counts_the_blocks_of_each_split(gpt2_bpe, tmp_path):
    from ivr.packing import read_dataset_record

    write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, TEXTS[:4]), 16, tmp_path / "packed", EOS_ID,
                        record={"block_size": 16})
    saved = read_packed_splits(tmp_path / "packed")
    assert len(saved[TRAIN_SPLIT]) != len(saved[VALIDATION_SPLIT])
    assert read_dataset_record(tmp_path / "packed")["blocks"] == {name: len(data) for name, data in saved.items()}


def test_leading_blocks_cover_the_same_text_whatever_the_tokenizer(gpt2_bpe):
    import json

    from tokenizers import Tokenizer

    spec = json.loads(gpt2_bpe.to_str())
    spec["model"]["merges"] = []  # a token per byte: the same text in about four times the tokens
    bytewise = Tokenizer.from_str(json.dumps(spec))
    per_block = {}
    for name, tok in {"bpe": gpt2_bpe, "bytes": bytewise}.items():
        counts = np.concatenate([c for _, c in pack_blocks(tok, TEXTS * 3, 16, EOS_ID)])
        k = leading_blocks(counts, 300)
        assert counts[: k - 1].sum() < 300 <= counts[:k].sum()  # the first 300 bytes, to within a block
        per_block[name] = counts[:6].sum()
    assert per_block["bpe"] > 2 * per_block["bytes"]  # a count of blocks is not: it covers other text
    assert leading_blocks(np.array([5, 5]), 100) == 2  # less text than asked: all of it
    assert leading_blocks(np.array([5, 5, 5]), 10) == 2  # the block that reaches it exactly is the last


def test_the_data_module_validates_on_the_leading_bytes_it_is_given(gpt2_bpe, tmp_path, monkeypatch):
    from ivr.data import IVRDataModule

    write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, TEXTS * 2), 16, tmp_path / "packed", EOS_ID)
    monkeypatch.setattr("ivr.data.pipeline.dataset_dir", lambda *a: tmp_path / "packed")
    sizes = {}
    for limit in (None, 200):
        data = IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), tokenizer="original", val_max_bytes=limit)
        data.setup("fit")
        sizes[limit] = int(data.datasets[VALIDATION_SPLIT][BYTES_COLUMN][:].sum()), len(data.datasets[TRAIN_SPLIT])
    assert 200 <= sizes[200][0] < sizes[None][0] and sizes[200][1] == sizes[None][1]  # the training split whole
    with pytest.raises(ValueError, match="data.val_max_bytes must be a positive number of bytes"):
        IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), val_max_bytes=0)


def test_a_split_without_one_full_block_names_it_and_leaves_nothing(gpt2_bpe, tmp_path):
    with pytest.raises(ValueError, match="the validation split has fewer than data.block_size=64 tokens"):
        write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, ["tiny"]), 64, tmp_path / "packed", EOS_ID)
    assert not (tmp_path / "packed").exists()


def test_a_split_of_exactly_one_block_of_bytes_and_separators_may_fill_it():
    from ivr.packing import check_splits_may_fill

    check_splits_may_fill({"train": ["abc", "de"]}, 7)  # 3 + 1 + 2 + 1 bytes and separators
    with pytest.raises(ValueError, match="the train split has fewer than data.block_size=8 tokens"):
        check_splits_may_fill({"train": ["abc", "de"]}, 8)


def test_a_split_may_fill_a_block_with_as_many_tokens_as_its_text_has_utf8_bytes():
    """A byte-level token may stand for one byte of a character of several bytes."""
    from ivr.packing import check_splits_may_fill

    text = "日本語"
    check_splits_may_fill({"train": [text]}, len(text.encode()) + 1)


def test_a_training_split_whose_bytes_cannot_fill_one_batch_on_every_device_is_refused():
    from ivr.packing import check_splits_may_fill

    splits = {"train": ["abc", "de"], "validation": ["x" * 10]}  # 7 bytes and separators; 11
    check_splits_may_fill(splits, 3, (2, 1))  # two blocks of 3
    check_splits_may_fill(splits, 2, (3, 1))
    with pytest.raises(ValueError, match=r"the train split's 7 bytes of text and separators make at most 2 blocks of "
                                         r"data.block_size=3 tokens .* fewer than one batch \(2 per device × 2 "
                                         r"devices\): the fit would train nothing"):
        check_splits_may_fill(splits, 3, (2, 2))
    # the held-out split needs one block only: a batch is the training split's measure
    with pytest.raises(ValueError, match="the validation split has fewer than data.block_size=5 tokens"):
        check_splits_may_fill({"train": ["x" * 40], "validation": ["ab"]}, 5, (8, 1))
    check_splits_may_fill({"train": ["x" * 40], "validation": ["abcd"]}, 5, (8, 1))


@pytest.mark.parametrize("fn, limit_val, refused", [("fit", 1.0, True), ("fit", 0, False), ("validate", 1.0, True)])
def test_a_held_out_split_whose_bytes_cannot_give_every_device_a_block_is_refused_before_the_stages(
        tmp_path, monkeypatch, fn, limit_val, refused):
    """Every device scores held-out blocks of its own: two devices need two, said right after init, not once every
    stage has run and validation starts; a fit without validation needs none."""
    from types import SimpleNamespace

    from ivr import pipeline
    from ivr.data import IVRDataModule

    stages = []
    monkeypatch.setattr(pipeline, "run_stage", lambda config, name: stages.append(name) or [])
    monkeypatch.setattr(pipeline, "_texts", lambda config, split: ["x" * 400] if split == "train" else ["y" * 40])
    monkeypatch.setattr(pipeline, "check_ids_fit", lambda *a, **k: None)
    monkeypatch.setattr(pipeline, "read_vocab_size", lambda directory: 50257)
    monkeypatch.setattr(pipeline, "build_datasets", lambda *a, **k: tmp_path / "blocks")
    data = IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="original", block_size=32, batch_size=2)
    data.trainer = SimpleNamespace(world_size=2, state=SimpleNamespace(fn=fn), limit_val_batches=limit_val,
                                   limit_test_batches=1.0)
    if not refused:
        assert data.prepare_data() == [tmp_path / "blocks"]
        return
    with pytest.raises(ValueError, match=r"the validation split's 41 bytes of text and separators make at most 1 "
                                         r"blocks of data.block_size=32 tokens .* fewer than the 2 devices"):
        data.prepare_data()
    assert stages == ["init"]


def test_a_failure_while_packing_or_saving_leaves_no_dataset(gpt2_bpe, tmp_path, monkeypatch):
    from datasets import DatasetDict

    def failing():
        yield from encoded_batches(gpt2_bpe, TEXTS)
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        write_packed_splits(gpt2_bpe, {"train": failing(), "validation": encoded_batches(gpt2_bpe, TEXTS)}, 16,
                            tmp_path / "packed", EOS_ID)
    assert list(tmp_path.iterdir()) == []
    save = DatasetDict.save_to_disk

    def save_then_fail(self, path, **kwargs):  # the splits written, the disk full before the record
        save(self, path, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(DatasetDict, "save_to_disk", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, TEXTS), 16, tmp_path / "packed", EOS_ID)
    assert list(tmp_path.iterdir()) == []


def test_blocks_go_through_a_scratch_file_that_is_removed(gpt2_bpe, tmp_path):
    write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, iter(TEXTS), iter(TEXTS[:4])), 16, tmp_path / "packed", EOS_ID,
                        total_bytes=sum(len(t.encode()) for t in TEXTS + TEXTS[:4]))
    assert [p.name for p in tmp_path.iterdir()] == ["packed"]
    # the held-out split fails after the training split's blocks went to the scratch file
    with pytest.raises(ValueError, match=r"the validation split has fewer than data\.block_size=64 tokens"):
        write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, ["tiny"]), 64, tmp_path / "other", EOS_ID)
    assert [p.name for p in tmp_path.iterdir()] == ["packed"]


def test_the_datasets_cache_key_holds_the_separator(tmp_path, monkeypatch):
    import json

    from tokenizers import Tokenizer, models

    from ivr.paths import ArtifactPaths
    from ivr.dataset_cache import dataset_dir

    monkeypatch.setattr("ivr.dataset_cache.corpus_content", lambda _: "corpus")
    paths = ArtifactPaths.from_config(tmp_path)
    directory = paths.tokenizer_dir("original")
    directory.mkdir(parents=True)
    tok = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    tok.add_special_tokens(["<s>", "</s>", "<|im_end|>"])
    tok.save(str(directory / "tokenizer.json"))
    keys = set()
    for eos in ("</s>", "<|im_end|>"):  # one tokenizer.json, two configs: documents joined by another id
        (directory / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": eos}))
        keys.add(dataset_dir(paths, "original", 8, 0.1))
    assert len(keys) == 2


def test_packed_datasets_of_an_earlier_tokenizer_are_removed_with_their_record(gpt2_bpe, tmp_path):
    from ivr.packing import DATASET_RECORD_FILE, read_dataset_record, remove_superseded_datasets

    datasets = tmp_path / "datasets"
    for name, sha, file in (("distilled-" + "a" * 16, "old", "t.json"), ("distilled-" + "b" * 16, "new", "t.json"),
                            ("original-" + "c" * 16, "old", "t.json"),
                            ("distilled-" + "e" * 16, "old", "other_tree.json")):  # a datasets folder shared
        write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, TEXTS), 16, datasets / name, EOS_ID,
                            record={"tokenizer": sha, "tokenizer_file": file, "block_size": 16})
    record = read_dataset_record(datasets / ("distilled-" + "b" * 16))
    assert record["block_size"] == 16 and record["blocks"]["train"] == record["blocks"]["validation"] > 0
    unrecorded = datasets / ("distilled-" + "d" * 16)  # packed before records were written: left alone
    write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, TEXTS), 16, unrecorded, EOS_ID)
    assert not (unrecorded / DATASET_RECORD_FILE).exists() and read_dataset_record(unrecorded) is None
    moved = tmp_path / "other_disk" / ("distilled-" + "f" * 16)  # moved to another disk and linked back
    write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, TEXTS), 16, moved, EOS_ID,
                        record={"tokenizer": "old", "tokenizer_file": "t.json", "block_size": 16})
    (datasets / moved.name).symlink_to(moved)
    backup = datasets / "distilled-backup"  # not a name the pipeline gives
    write_packed_splits(gpt2_bpe, encoded(gpt2_bpe, TEXTS, TEXTS), 16, backup, EOS_ID,
                        record={"tokenizer": "old", "tokenizer_file": "t.json", "block_size": 16})
    removed = remove_superseded_datasets(datasets, "distilled", "t.json", "new")
    assert removed == [datasets / ("distilled-" + "a" * 16)]
    assert sorted(p.name for p in datasets.iterdir()) == sorted([
        "distilled-" + "b" * 16, "distilled-backup", "distilled-" + "d" * 16, "distilled-" + "e" * 16,
        "distilled-" + "f" * 16, "original-" + "c" * 16])  # another kind is not touched
    assert read_dataset_record(moved)["tokenizer"] == "old" and read_dataset_record(backup)["tokenizer"] == "old"


def test_folders_the_pipeline_would_not_name_are_left_alone_whatever_their_record(tmp_path):
    """Only ``<tokenizer>-<16 hex digits>`` folders are the pipeline's: a copy of one named by hand is kept."""
    import json

    from ivr.packing import DATASET_RECORD_FILE, remove_superseded_datasets

    names = ["distilled-" + "a" * 16, "distilled-" + "a" * 15, "distilled-" + "a" * 17, "distilled-cafe"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / DATASET_RECORD_FILE).write_text(json.dumps({"tokenizer": "old", "tokenizer_file": "t.json"}))
    assert remove_superseded_datasets(tmp_path, "distilled", "t.json", "new") == [tmp_path / names[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


def test_a_held_out_split_whose_bytes_cannot_give_every_device_a_block_is_refused():
    """Validation gives every device blocks of its own: refused before the stages, not when validation starts."""
    from ivr.packing import check_splits_may_fill

    splits = {"train": ["x" * 40], "validation": ["abcd", "ef"]}  # 5 + 3 bytes and separators
    check_splits_may_fill(splits, 4, (1, 2), scorers=2)  # two blocks of 4 at most: one per device
    with pytest.raises(ValueError, match=r"the validation split's 8 bytes of text and separators make at most 1 "
                                         r"blocks of data.block_size=5 tokens .* fewer than the 2 devices"):
        check_splits_may_fill(splits, 5, (1, 2), scorers=2)
    check_splits_may_fill(splits, 5, (1, 1))
    check_splits_may_fill(splits, 5, (1, 2))  # a fit that does not validate (trainer.limit_val_batches 0)
