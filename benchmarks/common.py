"""What the benchmark scripts share: the distillation benchmark's corpora and held-out sets (built from
``ivr.builtin_corpora``), argument parsing, timing, the metric table, and documents scored whole by a model.

Scripts run as ``uv run python benchmarks/NAME.py``, which puts this folder on the import path, so they
import it as ``common``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shutil
import statistics
import tarfile
import tempfile
import time
import typing
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ivr.builtin_corpora import (
    LOCALE_ROOT,
    documentation_texts,
    english_reference_texts,
    python_stdlib_texts,
    translated_messages,
    until_size,
)
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.gpt2_pre_tokens import pre_tokenizer_steps
from ivr.tokenizers.io import load_tokenizer, read_special_tokens
from ivr.tokenizers.source import fetch_original_tokenizer

PROSE_CHARS = 4_000_000
"""Cap on the English prose, in characters: the help topics, then ``/usr/share/doc`` files until it is passed."""
# the distillation benchmark's code: the library's exclusions differ (it keeps idlelib but not idle_test, and
# leaves pydoc_data out whole), which would change every figure measured on this corpus
CODE_SKIPPED_DIRS = frozenset({"site-packages", "test", "tests", "idlelib"})
CODE_SKIPPED_NAMES = frozenset({"topics.py"})
LANGUAGES = ("de", "fr", "es", "it", "pt_BR", "pl", "nl", "ru", "ja", "ko", "zh_CN")
"""Locales of the held-out message sets, with 57-87 message catalogues each on a Debian-like system."""
EXACT_TARGET = 0.9999
"""Share of held-out word occurrences a distilled tokenizer must encode exactly as its BPE does."""
WORDS_PER_BATCH = 20_000
"""Words per ``encode_batch`` call of ``encode_ids``."""


# llama.cpp's vocabulary-only GGUF files of real models (Llama-3, Qwen2, StarCoder, DeepSeek, Falcon, GPT-2) with
# their tokenizer test strings, as the llama-cpp-python source distribution on PyPI ships them
LLAMA_CPP_SDIST = ("https://files.pythonhosted.org/packages/e4/b4/"
                   "c8cd17629ced0b9644a71d399a91145aedef109c0333443bef015e45b704/llama_cpp_python-0.3.16.tar.gz",
                   "34ed0f9bd9431af045bb63d9324ae620ad0536653740e9bb163a2e1fcb973be6")
LLAMA_CPP_VOCABS = Path.home() / ".cache" / "ivr" / "llama-cpp-python-0.3.16-vocabs"


def llama_cpp_vocab(name: str, cache: Path = LLAMA_CPP_VOCABS) -> Path:
    """llama.cpp's ``ggml-vocab-<name>.gguf`` (``llama-bpe`` is Llama-3's, ``qwen2``, ``starcoder``, ...), taken
    from the pinned llama-cpp-python source distribution (50 MB from PyPI, its SHA-256 checked) into ``cache``
    once; the files are moved into place only when all are extracted."""
    path = cache / f"ggml-vocab-{name}.gguf"
    if not cache.is_dir():
        url, sha256 = LLAMA_CPP_SDIST
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
            archive = Path(tmp) / "sdist.tar.gz"
            with urllib.request.urlopen(url, timeout=300) as response, archive.open("wb") as f:
                shutil.copyfileobj(response, f)
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            if digest != sha256:
                raise SystemExit(f"{url}: SHA-256 {digest}, expected {sha256}")
            out = Path(tmp) / "vocabs"
            out.mkdir()
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    if member.isfile() and "/vendor/llama.cpp/models/ggml-vocab-" in member.name:
                        (out / Path(member.name).name).write_bytes(tar.extractfile(member).read())
            out.rename(cache)
    if not path.is_file():
        known = sorted(p.name.removeprefix("ggml-vocab-").removesuffix(".gguf") for p in cache.glob("*.gguf"))
        raise SystemExit(f"no {path.name} in {cache}; one of {', '.join(known)}")
    return path


def llama_cpp_cases(gguf: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's tokenizer test strings for ``gguf`` (``.inp``, separated by ``__ggml_vocab_test__`` lines) and
    the ids the model's own Hugging Face tokenizer gives each, without special tokens (``.out``, one line each)."""
    inp = Path(f"{gguf}.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    out = Path(f"{gguf}.out").read_text(encoding="utf-8").split("\n")
    if inp[-1] == "":  # the file ends with a separator
        inp.pop()
    if len(out) < len(inp):
        raise SystemExit(f"{gguf}.out: {len(out)} lines for {len(inp)} test strings")
    return [(text, [int(i) for i in line.split()]) for text, line in zip(inp, out)]


def stdlib_split(heldout_every: int) -> tuple[list[str], list[str]]:
    """The standard library's ``.py`` files (no installed packages, tests, IDLE or help topics), split by file:
    every ``heldout_every``-th one is held out. Returns (fit texts, held-out texts)."""
    fit, held = [], []
    for i, (_, text) in enumerate(python_stdlib_texts(CODE_SKIPPED_DIRS, CODE_SKIPPED_NAMES)):
        (held if i % heldout_every == 0 else fit).append(text)
    return fit, held


def english_prose(limit_chars: int = PROSE_CHARS) -> dict[str, list[str]]:
    """Python's help topics (documentation prose with code examples) and ``/usr/share/doc`` text (READMEs,
    changelogs, copyright notices: many names): files with no suffix, ``.txt`` or ``.md``, under 200 kB, valid
    UTF-8, no links, up to ``limit_chars`` characters in all."""
    topics = english_reference_texts()
    docs = documentation_texts(suffixes={"", ".txt", ".md"}, max_file_bytes=200_000 - 1)
    return {
        "prose_help_topics": topics,
        "prose_usr_share_doc": until_size(docs, limit_chars, size=len, already=sum(len(t) for t in topics)),
    }


def distillation_sets(heldout_every: int = 10) -> dict[str, list[str]]:
    """The distillation benchmark's fit corpus, held-out code and English prose (both sources together)."""
    fit, held = stdlib_split(heldout_every)
    return {"corpus": fit, "held-out code": held, "prose": [t for texts in english_prose().values() for t in texts]}


def held_out_sets(heldout_every: int, lang_chars: int, languages: tuple[str, ...]) -> tuple[dict, dict]:
    """(fit corpora by name, held-out sets by name): code and English prose split by document, and the
    translated messages of each language (never fitted on), up to ``lang_chars`` characters per language."""
    code_fit, code_held = stdlib_split(heldout_every)
    prose = [t for texts in english_prose().values() for t in texts]
    fits = {"code": code_fit, "prose": prose[1::2]}
    sets = {"code (held-out stdlib)": code_held, "English prose (held-out docs)": prose[::2]}
    for lang in languages:
        texts = until_size((text for _, text in translated_messages(lang)), lang_chars, size=len)
        if not texts:  # a misspelt locale would leave its row out of every table without a word
            raise SystemExit(f"--languages {lang}: no message catalogues under {LOCALE_ROOT / lang / 'LC_MESSAGES'} "
                             "(locales are named as there: pt_BR, zh_CN)")
        sets[f"{lang} messages"] = texts
    return fits, sets


def encode_ids(tok, words: list[str]) -> list[list[int]]:
    """Each word's ids under ``tok``, encoded in batches of ``WORDS_PER_BATCH``."""
    return [e.ids for i in range(0, len(words), WORDS_PER_BATCH)
            for e in tok.encode_batch(words[i:i + WORDS_PER_BATCH])]


def fetched_source(directory: Path, name: str, allow_hub: bool = True):
    """The source tokenizer ``name`` (a GGUF path or ``distribution:path``, a folder, a Hub name) fetched afresh
    into ``directory`` as ``ivr init`` fetches it, and its special tokens."""
    original, _ = fetch_original_tokenizer(directory, name, force=True, allow_hub=allow_hub)
    return load_tokenizer(original), read_special_tokens(original)


def regex_characters(spec: dict) -> int:
    """Characters of the regexes a ``tokenizer.json`` (``spec``) pre-tokenizes by, over every step of a
    ``Sequence`` (SmolLM2's puts a ``Digits`` step before its ``Split``)."""
    return sum(len(step["pattern"]["Regex"]) for step in pre_tokenizer_steps(spec)
               if "Regex" in step.get("pattern", {}))


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose ``--help`` shows the script's docstring as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_heldout_every(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--heldout-every", type=positive_int, default=10, help="every n-th stdlib file is held out")


def add_settings(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a DistillSettings field (data.distill.KEY), repeatable")


def settings_from(pairs: list[str], cls: type = DistillSettings, flag: str = "--set", **given):
    """``cls`` (a settings dataclass, ``DistillSettings`` by default) with ``KEY=VALUE`` pairs and the keyword
    arguments that are not None applied. Each value is read as its field's type says: ``null`` for None where the
    field allows it, a comma-separated list for a list field."""
    hints = typing.get_type_hints(cls)
    changes = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in hints:
            raise SystemExit(f"{flag} {pair}: no such setting; one of {', '.join(hints)}")
        try:
            changes[key] = _typed(hints[key], value)
        except ValueError as err:
            raise SystemExit(f"{flag} {pair}: {err}") from None
    try:
        return cls(**{**{k: v for k, v in given.items() if v is not None}, **changes})
    except ValueError as err:  # a value of the right type that the settings refuse (margin=0)
        raise SystemExit(f"{flag} {' '.join(pairs)}: {err}") from None


def comma_choices(choices) -> typing.Callable[[str], list[str]]:
    """An argparse type: a comma-separated list of ``choices``, refused at parsing when one is unknown."""
    def parse(value: str) -> list[str]:
        items = [v for v in value.split(",") if v]
        unknown = [v for v in items if v not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"{','.join(unknown) or repr(value)}: choose from {', '.join(choices)}")
        return items
    return parse


def _number(value: str, kind: type, what: str, ok: typing.Callable[[float], bool], requirement: str):
    try:
        number = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: not {what}") from None
    if not ok(number):
        raise argparse.ArgumentTypeError(f"{value}: {requirement}")
    return number


def positive_int(value: str) -> int:
    """An argparse type: an integer of at least 1 (a count of passes, steps, seeds or files)."""
    return _number(value, int, "an integer", lambda n: n >= 1, "must be at least 1")


def non_negative_int(value: str) -> int:
    """An argparse type: an integer of at least 0 (a count where 0 means none: examples to print, warm-up steps)."""
    return _number(value, int, "an integer", lambda n: n >= 0, "must be at least 0")


def two_or_more(value: str) -> int:
    """An argparse type: an integer of at least 2 (a block or window of tokens: inputs and next-token targets)."""
    return _number(value, int, "an integer", lambda n: n >= 2, "must be at least 2")


def random_seed(value: str) -> int:
    """An argparse type: a seed from 0 to 2**32 - 1 (numpy's and Lightning's seeding refuse any other)."""
    return _number(value, int, "an integer", lambda n: 0 <= n < 2**32, "must be from 0 to 2**32 - 1")


def positive_float(value: str) -> float:
    """An argparse type: a finite number above 0 (a size in MB, a learning rate, a step size, an exponent)."""
    return _number(value, float, "a number", lambda n: 0 < n < math.inf, "must be above 0 and finite")


def non_negative_float(value: str) -> float:
    """An argparse type: a finite number of at least 0 (a weight where 0 means none)."""
    return _number(value, float, "a number", lambda n: 0 <= n < math.inf, "must be at least 0 and finite")


def fraction(value: str) -> float:
    """An argparse type: a share strictly between 0 and 1 (a held-out fraction: both parts must hold documents)."""
    return _number(value, float, "a number", lambda n: 0 < n < 1, "must be between 0 and 1, both excluded")


def tokenizer_dir(value: str) -> Path:
    """An argparse type: a folder holding a saved ``tokenizer.json`` (a distilled tokenizer), refused at parsing
    where there is none, before a run of minutes reaches the first line that reads it."""
    from ivr.paths import TOKENIZER_FILE

    if not (Path(value) / TOKENIZER_FILE).is_file():
        raise argparse.ArgumentTypeError(f"{value}: no {TOKENIZER_FILE} there (give the folder that holds it)")
    return Path(value)


def _typed(hint, value: str):
    args = typing.get_args(hint)
    if type(None) in args:
        if value.lower() in ("null", "none"):
            return None
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is list:
        return [_typed(typing.get_args(hint)[0], v) for v in value.split(",") if v]
    if origin is tuple:
        return tuple(_typed(typing.get_args(hint)[0], v) for v in value.split(",") if v)
    if hint is bool:
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"not a boolean: {value!r}")
        return value.lower() in ("1", "true", "yes")
    if hint is int:
        number = float(value)  # 1e3 is an int too
        if not number.is_integer():
            raise ValueError(f"not an integer: {value!r}")
        return int(number)
    if hint is float:
        return float(value)
    if hint is Path:
        return Path(value)
    return value  # str, a Literal's choices


class Stopwatch:
    """``with Stopwatch() as t: ...``; then ``t.seconds`` is the wall time the block took."""

    seconds: float

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start


def print_metrics(rows: list[tuple[str, str]]) -> None:
    """A two-column ``metric | value`` table, after an empty line."""
    width = max(len(k) for k, _ in rows)
    print(f"\n{'metric':<{width}} | value\n{'-' * width}-|------")
    for k, v in rows:
        print(f"{k:<{width}} | {v}")


def chunk_timings(toks: dict, chunks: list[list[str]], repeats: int, batch: bool) -> dict[str, list[float]]:
    """Seconds each tokenizer takes on each chunk, ``repeats`` times over; the tokenizers take turns chunk by
    chunk (in a rotating order), so that the machine's drift hits them alike."""
    names = list(toks)
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(repeats):
        for c, chunk in enumerate(chunks):
            for k in names[c % len(names):] + names[: c % len(names)]:
                start = time.perf_counter()
                if batch:
                    toks[k].encode_batch(chunk)
                else:
                    for text in chunk:
                        toks[k].encode(text)
                times[k].append(time.perf_counter() - start)
    return times


def encode_speeds(toks: dict, texts: list[str], repeats: int, n_chunks: int = 40):
    """For ``encode_batch`` and then ``encode`` on one thread: the label, each tokenizer's MB/s, and for each
    tokenizer but ``toks["bpe"]`` the ratio of BPE's time to its time on each chunk (``chunk_timings``; the
    median over chunks moved by 1-2% between runs on a shared machine, a whole-pass ratio by 10%)."""
    chunks = [texts[i::n_chunks] for i in range(n_chunks)]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    try:
        for batch in (True, False):
            if not batch:
                os.environ["TOKENIZERS_PARALLELISM"] = "false"  # read at every call, unlike RAYON_NUM_THREADS
            t = chunk_timings(toks, chunks, repeats, batch)
            yield ("encode_batch" if batch else "encode, 1 thread", {k: mb * repeats / sum(v) for k, v in t.items()},
                   {k: [b / x for b, x in zip(t["bpe"], t[k])] for k in toks if k != "bpe"})
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def speed_rows(bpe, distilled, texts: list[str], repeats: int) -> list[tuple[str, str]]:
    """Encode speed of the distilled tokenizer against the source BPE's (``encode_speeds``): the median over
    chunks of the ratio of their times on the same chunk, batched and on one thread."""
    return [(f"{label} MB/s BPE / distilled (median chunk ratio)",
             f"{speed['bpe']:.2f} / {speed['distilled']:.2f} ({statistics.median(ratios['distilled']):.3f}x)")
            for label, speed, ratios in encode_speeds({"bpe": bpe, "distilled": distilled}, texts, repeats)]


def config_heldout_fraction(config: Path) -> float:
    """``data.heldout_fraction`` of the YAML ``config``, or the data module's default where it sets none."""
    import inspect

    import yaml

    from ivr.data import IVRDataModule  # not at the top: most scripts never load the data module

    data = yaml.safe_load(config.read_text(encoding="utf-8"))["data"]
    return data.get("heldout_fraction", inspect.signature(IVRDataModule).parameters["heldout_fraction"].default)


# ---- documents scored whole by a model ----------------------------------------------------------------------
# named tuples, not dataclasses: the tests load this file by path, outside sys.modules, where a dataclass fails
class EvalSet(NamedTuple):
    """Documents encoded by one tokenizer: ids and character offsets per document."""

    ids: list[np.ndarray]
    offsets: list[np.ndarray]


class Scores(NamedTuple):
    """Per document, the negative log-likelihood (nats) of every token."""

    nll: list[np.ndarray]


def encode(tok, texts: list[str]) -> EvalSet:
    """Each text's ids and character offsets under ``tok``, without special tokens."""
    encodings = tok.encode_batch(texts, add_special_tokens=False)
    return EvalSet([np.asarray(e.ids) for e in encodings], [np.asarray(e.offsets).reshape(-1, 2) for e in encodings])


def document_windows(docs: list[np.ndarray], separator: int, window: int) -> list[tuple[int, int, np.ndarray]]:
    """``(document, first token index, window ids)``: each document's ids behind ``separator``, cut into windows
    of ``window`` tokens that overlap by one (the previous window's last token is the next one's context), so
    every token of every document is predicted exactly once."""
    pieces = []
    for d, ids in enumerate(docs):
        stream = np.concatenate([[separator], ids]).astype(np.int64)
        for start in range(0, len(stream) - 1, window - 1):
            pieces.append((d, start, stream[start : start + window]))
    return pieces


def score(model, docs: EvalSet, separator: int, window: int, batch: int) -> Scores:
    """Every token's loss, each document scored whole (``document_windows``)."""
    import torch  # not at the top: the scripts that score no model start without torch

    from ivr.metrics import token_nll

    model.eval()
    device = next(model.parameters()).device  # a model being trained on a GPU is scored where it is
    pieces = document_windows(docs.ids, separator, window)
    out = Scores([np.zeros(len(ids)) for ids in docs.ids])
    with torch.no_grad():
        for i in range(0, len(pieces), batch):
            group = pieces[i : i + batch]
            width = max(len(p[2]) for p in group)
            ids = torch.zeros(len(group), width, dtype=torch.long)
            for row, (_, _, w) in enumerate(group):
                ids[row, : len(w)] = torch.from_numpy(w)
            ids = ids.to(device)
            nll = token_nll(model(input_ids=ids).logits, ids)[0].view(len(group), width - 1).float().cpu().numpy()
            for row, (d, start, w) in enumerate(group):
                # position j of the window predicts stream token start + j + 1, document token start + j
                out.nll[d][start : start + len(w) - 1] = nll[row, : len(w) - 1]
    return out


def bpb(scores: Scores, docs: EvalSet, nbytes: np.ndarray) -> float:
    """Bits per byte of ``scores`` over ``docs``; ``nbytes``: each id's bytes (``ivr.packing.token_byte_lengths``)."""
    from ivr.metrics import bits_per_byte

    nll = sum(s.sum() for s in scores.nll)
    return float(bits_per_byte(nll, sum(int(nbytes[ids].sum()) for ids in docs.ids)))
