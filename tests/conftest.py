"""Shared fixtures: tiny corpora made in the test; nothing touches the network."""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

# forced, not defaulted: huggingface_hub reads these once, when it is imported, and an HF_HUB_OFFLINE=0 in the
# caller's environment must not let a test reach the Hub; an empty cache keeps a user's cached models out too
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="ivr-tests-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# one worker per core: each worker's libraries take its share of the cores, set before they are imported (two
# workers each running two torch threads on two cores contend: two test files took 167 s, against 148 s so)
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
        os.environ.setdefault(_name, str(max(1, (os.cpu_count() or 1) // _WORKERS)))

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """A connection to anything but this machine fails the test that makes it."""
    connect = socket.socket.connect

    def local_only(sock, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            pytest.fail(f"a test tried to reach the network ({address})")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


@pytest.fixture(autouse=True, scope="session")
def merge_trees_once():
    """The score fit's merge-tree matrix, built once per test process for each vocabulary: every GPT-2
    distillation of the suite builds the same one (2.5 s each); ``scores.merge_tree_matrix`` itself is
    tested as it is."""
    from ivr.tokenizers.distill import lp_fit

    build, built = lp_fit.merge_tree_matrix, {}

    def once(pieces, merges, whole_pieces=False):
        key = (tuple(pieces), tuple(merges), whole_pieces)
        if key not in built:
            built[key] = build(pieces, merges, whole_pieces)
        return built[key].copy()  # the fit only reads it; a copy keeps a test that changed it from the next

    lp_fit.merge_tree_matrix = once
    yield
    lp_fit.merge_tree_matrix = build


@pytest.fixture(scope="session")
def gpt2_bpe():
    from ivr.tokenizers.bpe import offline_gpt2_tokenizer

    return offline_gpt2_tokenizer()


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """A small mixed corpus: a .txt document, a .jsonl file of records, a .json list, in a subfolder."""
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    (raw / "readme.txt").write_text("\ufeffHello world!\r\nSecond line.\r\n", encoding="utf-8")
    (raw / "sub" / "notes.jsonl").write_text(
        "\n".join(json.dumps({"text": f"def f{i}(x):\n    return x + {i}\n", "meta": i}) for i in range(5)) + "\n",
        encoding="utf-8",
    )
    (raw / "list.json").write_text(json.dumps([{"text": "Ünïcödé text"}, {"text": "more text"}]), encoding="utf-8")
    return raw


def benchmark_module(name: str):
    """A script of ``benchmarks/`` imported as a module, as ``uv run python benchmarks/NAME.py`` would run it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_cli_args(tmp_path: Path, *extra: str) -> list[str]:
    """The demo config shrunk to seconds: a 0.3 MB slice of the built-in corpus, a 2-layer GPT-2, the
    original tokenizer (the IVR pipeline has its own end-to-end test, test_pipeline.py) and a distillation
    fitted on the corpus alone."""
    return [
        "--config", str(ROOT / "configs" / "demo.yaml"),
        "--data.artifacts_dir", str(tmp_path / "artifacts"),
        "--data.builtin_corpus_max_mb", "0.3",
        "--data.heldout_fraction", "0.2",
        "--data.block_size", "32",
        "--data.batch_size", "4",
        "--model.from_config.n_positions", "32",
        "--model.from_config.n_embd", "16",
        "--data.tokenizer", "original",
        # fit words from the corpus only, no ruler rules, no general words: seconds per fit (the shipped settings
        # take a minute on this corpus; benchmarks/distill_benchmark.py measures them)
        "--data.distill.vocab_words", "false", "--data.distill.vocab_variants", "false",
        "--data.distill.number_words", "0", "--data.distill.split_rule_chars", "",
        "--data.distill.general_languages", "",
        # a small general text for selection's prior and lengthening check (the shipped 50,000 words and 2 MB of
        # code take seconds per selection); test_select and test_general_use test what the prior and the check do
        "--data.select.general_prior_words", "2000", "--data.select.general_code_mb", "0.02",
        *extra,
    ]

@pytest.fixture(scope="session")
def distilled():
    """A Unigram over GPT-2's vocabulary scored from the merge tree: close to the distilled tokenizer, instant."""
    from tests.standin import standin_distilled_tokenizer

    return standin_distilled_tokenizer()


def make_code_docs(n_docs: int = 40, seed: int = 0) -> list[str]:
    """Small Python-like documents: deep indentation, repeated identifiers, a few rare words."""
    rng = random.Random(seed)
    names = ["request", "response", "dispatch_table", "serializer", "queryset", "middleware"]
    docs = []
    for d in range(n_docs):
        lines = [f"class Handler{d}(BaseHandler):"]
        for k in range(12):
            a, b = rng.sample(names, 2)
            lines += [
                f"    def handle_{a}(self, {b}):",
                f"        if isinstance({b}, {a.title()}Error):",
                f"            return self.{a}_{b}[{k}]",
                "        return None",
            ]
        docs.append("\n".join(lines) + "\n")
    return docs


@pytest.fixture(scope="session")
def code_docs():
    return make_code_docs()


@pytest.fixture(scope="module")
def bpe():
    """GPT-2's packaged BPE tokenizer (modules may override it)."""
    from ivr.tokenizers.bpe import offline_gpt2_tokenizer

    return offline_gpt2_tokenizer()


@pytest.fixture(scope="module")
def rule(bpe):
    """The split rule for a character (byte-level piece), built once per module as the fit builds it."""
    from ivr.tokenizers.unigram import bare_model
    from tests.distill_fixtures import split_rule

    bare = bare_model(bpe)
    return lambda char: split_rule(bare, char)
