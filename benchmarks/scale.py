"""How ``ivr prepare`` scales with the corpus: wall time, CPU time and peak memory of each stage on 8, 32 and
128 MB of Python code (1 GB with ``--gigabyte``), against one raw GPT-2 BPE encode pass over the same text.

The corpus is the environment's own ``.py`` files (``ivr.builtin_corpora.environment_code_paths``: the virtual
environment's packages and the standard library), in an order fixed by a hash of each file's path so that every size
mixes many packages; each size is a prefix of the next. Where the files run out (1 GB), they are taken again from
the start, which repeats words but not distinct ones. Each stage runs as its own ``ivr`` command on
``configs/demo.yaml`` (the demo's settings, the built-in corpus replaced by these files), so its peak resident
memory is that process's own; the last command, ``prepare``, finds every stage current and packs the datasets. Every
command's figures include its start-up (imports, the CLI), measured on its own as ``ivr --help``; ``ivr prepare``
pays it once, which the row "one start-up" shows (the sum less the other commands' start-ups; ``--one-command`` also
runs ``ivr prepare`` alone on fresh artifacts). The scale target excludes the score fit, whose CPU time the
distilled tokenizer's metadata records (``fit.score_fit_cpu_seconds``). The reference is one ``encode_batch`` pass
of GPT-2's BPE over the corpus, batches of 64 documents, with the library's default threads. Its CPU time varies
more from run to run than the stages' (two threads of a batch encode wait for each other, and how long depends on
the machine), so it is measured three times (``--references``), before the stages, after the distillation and after
the last stage; the ratios are to the median, and the target's row also gives the ratio to the cheapest.

Every run builds each size's artifacts from nothing (an earlier run's under ``--work`` are removed first); the raw
corpus an earlier run finished writing there (``corpus.json`` beside it) is reused.

    uv run python benchmarks/scale.py --sizes 8 32 128 --work /tmp/ivr_scale
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from common import parser, positive_int, regex_characters

from ivr.atomic import write_text
from ivr.builtin_corpora import environment_code_paths, environment_code_texts, utf8_size
from ivr.cleaned_corpus import batched
from ivr.paths import ArtifactPaths
from ivr.tokenizers.io import read_metadata

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("init", "analyze", "distill-tokenizer", "select", "remap", "align", "prepare")
SHARD_BYTES = 16_000_000


def corpus_texts(limit_bytes: int) -> Iterator[str]:
    """Texts of ``environment_code_texts`` up to ``limit_bytes`` of UTF-8, taken again from the start if needed."""
    files, total = environment_code_paths(), 0
    while total < limit_bytes:
        for text in environment_code_texts(files):
            yield text
            total += utf8_size(text)
            if total >= limit_bytes:
                return


def write_corpus(raw_dir: Path, megabytes: int) -> dict:
    """The corpus as JSONL shards of ``{"text"}`` records (a file per record), then ``corpus.json`` beside the
    folder (not in it: ``ivr init`` would read it as corpus): its documents and UTF-8 bytes of text, which a later
    run reads back instead of writing the corpus again."""
    corpus_file(raw_dir).unlink(missing_ok=True)  # written last: it vouches for complete shards only
    shutil.rmtree(raw_dir, ignore_errors=True)
    raw_dir.mkdir(parents=True)
    docs = size = shard = written = 0
    out = None
    for text in corpus_texts(megabytes * 1_000_000):
        if out is None or written >= SHARD_BYTES:
            if out:
                out.close()
            out, written, shard = open(raw_dir / f"code-{shard:04d}.jsonl", "w", encoding="utf-8"), 0, shard + 1
        line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
        out.write(line)
        written += len(line)
        docs, size = docs + 1, size + utf8_size(text)
    if out:
        out.close()
    sizes = {"megabytes": megabytes, "documents": docs, "bytes": size}
    corpus_file(raw_dir).write_text(json.dumps(sizes), encoding="utf-8")
    return sizes


def corpus_file(raw_dir: Path) -> Path:
    return raw_dir.parent / "corpus.json"


def corpus(raw_dir: Path, megabytes: int) -> dict:
    """The corpus of ``megabytes`` in ``raw_dir``: the one an earlier run finished writing there, else a new one."""
    try:
        sizes = json.loads(corpus_file(raw_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        sizes = None
    return sizes if sizes and sizes.get("megabytes") == megabytes else write_corpus(raw_dir, megabytes)


def run_command(args: list[str], log_path: Path) -> dict:
    """Run one ``ivr`` command; its wall time, CPU time (user + system, all threads) and peak resident memory in MiB
    (the kernel counts it in KiB)."""
    start = time.perf_counter()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", *args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"`ivr {' '.join(args[:1])}` failed (status {proc.returncode}); see {log_path}")
    return {"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}


def encode_pass(raw_dir: Path) -> dict:
    """One GPT-2 BPE ``encode_batch`` pass over the corpus records (read from the shards as it goes)."""
    from ivr.tokenizers.bpe import offline_gpt2_tokenizer

    tok = offline_gpt2_tokenizer()

    def texts() -> Iterator[str]:
        for shard in sorted(raw_dir.glob("*.jsonl")):
            with open(shard, encoding="utf-8") as f:
                yield from (json.loads(line)["text"] for line in f)

    before, start, tokens = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
    for batch in batched(texts(), 64):
        tokens += sum(len(e.ids) for e in tok.encode_batch(batch, add_special_tokens=False))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": time.perf_counter() - start, "cpu": cpu, "tokens": tokens}


def regex_and_file_sizes(artifacts: Path) -> dict:
    """Characters of the distilled tokenizer's pre-tokenizer regex, bytes of its ``tokenizer.json``, rules."""
    path = ArtifactPaths.from_config(artifacts).tokenizer_file("distilled")
    spec = json.loads(path.read_text(encoding="utf-8"))
    meta = read_metadata(path.parent, required=True)
    fit = meta.get("fit", {})
    return {"regex_chars": regex_characters(spec), "tokenizer_json_bytes": path.stat().st_size,
            "word_rules": len(meta.get("word_rules", [])), "split_rules": len(meta.get("split_rules", [])),
            "fit_word_types": fit.get("fit_word_types"), "corpus_word_types": fit.get("corpus_word_types"),
            "score_fit_cpu": fit.get("score_fit_cpu_seconds")}


def measure(megabytes: int, work: Path, one_command: bool = False, references: int = 3) -> dict:
    raw, artifacts = work / f"{megabytes}mb" / "raw", work / f"{megabytes}mb" / "artifacts"
    sizes = corpus(raw, megabytes)
    shutil.rmtree(artifacts, ignore_errors=True)  # an earlier run's stages would all be found current
    passes = [encode_pass(raw)]
    startup = run_command(["--help"], work / f"{megabytes}mb" / "ivr.log")
    def args(artifacts_dir: Path) -> list[str]:
        return ["--config", str(ROOT / "configs" / "demo.yaml"), "--data.builtin_corpus", "null",
                "--data.raw_corpora_dir", str(raw), "--data.artifacts_dir", str(artifacts_dir),
                "--data.on_bad_record", "skip"]

    stages = {}
    for stage in STAGES:
        stages[stage] = run_command([stage, *args(artifacts)], work / f"{megabytes}mb" / "ivr.log")
        print(f"{megabytes} MB {stage}: {stages[stage]}", flush=True)
        if references > len(passes) and stage in ("distill-tokenizer", STAGES[-1]):
            passes.append(encode_pass(raw))  # the machine's pace drifts: sample it during the run too
    result = {**sizes, "references": passes, "startup": startup, "stages": stages,
              "distilled": regex_and_file_sizes(artifacts)}
    if one_command:  # the whole preparation as users run it: one start-up, every stage built afresh
        fresh = work / f"{megabytes}mb" / "artifacts_one_command"
        shutil.rmtree(fresh, ignore_errors=True)
        result["prepare"] = run_command(["prepare", *args(fresh)], work / f"{megabytes}mb" / "ivr.log")
        print(f"{megabytes} MB prepare as one command: {result['prepare']}", flush=True)
    return result


def print_table(results: list[dict]) -> None:
    print("\n| corpus | stage | wall (s) | CPU (s) | peak RSS (MiB) | CPU / one BPE encode pass |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        cpus = [p["cpu"] for p in r["references"]]
        ref, cheapest = statistics.median(cpus), min(cpus)
        name = f"{r['megabytes']} MB"
        which = f"the median of {' / '.join(f'{c:.1f}' for c in cpus)} CPU-s" if len(cpus) > 1 else "reference"
        print(f"| {name} | one BPE encode pass ({which}) | {statistics.median(p['wall'] for p in r['references']):.1f} | "
              f"{ref:.1f} | | 1.0 |")
        s = r["startup"]
        print(f"| {name} | start-up of one command (`ivr --help`), in each row below | {s['wall']:.1f} | {s['cpu']:.1f} | "
              f"{s['peak_mb']:,.0f} | {s['cpu'] / ref:.1f} |")
        for stage, s in r["stages"].items():
            label = "datasets (`prepare`, the rest current)" if stage == "prepare" else stage
            print(f"| {name} | {label} | {s['wall']:.1f} | {s['cpu']:.1f} | {s['peak_mb']:,.0f} | {s['cpu'] / ref:.1f} |")
        wall, cpu = sum(s["wall"] for s in r["stages"].values()), sum(s["cpu"] for s in r["stages"].values())
        peak = max(s["peak_mb"] for s in r["stages"].values())
        print(f"| {name} | **all stages** | {wall:.1f} | {cpu:.1f} | {peak:,.0f} | {cpu / ref:.1f} |")
        # `ivr prepare` runs every stage after one start-up: the sum less the other commands' start-ups
        extra = len(r["stages"]) - 1
        one_wall, one_cpu = wall - extra * r["startup"]["wall"], cpu - extra * r["startup"]["cpu"]
        print(f"| {name} | all stages, one start-up (the sum less {extra} start-ups) | {one_wall:.1f} | {one_cpu:.1f} | "
              f"{peak:,.0f} | {one_cpu / ref:.1f} |")
        if "prepare" in r:
            s = r["prepare"]
            print(f"| {name} | `ivr prepare` as one command, fresh artifacts | {s['wall']:.1f} | {s['cpu']:.1f} | "
                  f"{s['peak_mb']:,.0f} | {s['cpu'] / ref:.1f} |")
        score = r["distilled"].get("score_fit_cpu")
        if score is not None:  # the target: at most 6 encode passes besides the score fit
            print(f"| {name} | the same less the score fit ({score:.1f} CPU-s; target: at most 6 passes; "
                  f"{(one_cpu - score) / cheapest:.1f} against the cheapest reference pass) | | "
                  f"{one_cpu - score:.1f} | | {(one_cpu - score) / ref:.1f} |")
    print("\n| corpus | corpus word types | fit word types | split rules | word rules | regex (characters) | tokenizer.json (bytes) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        d = r["distilled"]
        print(f"| {r['megabytes']} MB | {d['corpus_word_types']} | {d['fit_word_types']} | {d['split_rules']} | "
              f"{d['word_rules']} | {d['regex_chars']:,} | {d['tokenizer_json_bytes']:,} |")


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--sizes", type=positive_int, nargs="+", default=[8, 32, 128], help="corpus sizes in MB")
    ap.add_argument("--gigabyte", action="store_true", help="also a 1,000 MB corpus")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ivr_scale"), help="corpora, artifacts and logs")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--one-command", action="store_true",
                    help="also run `ivr prepare` alone on fresh artifacts (one start-up; doubles the run's time)")
    ap.add_argument("--references", type=int, choices=(1, 2, 3), default=3,
                    help="reference passes per size: before the stages, after the distillation, at the end")
    args = ap.parse_args()
    results = []
    for mb in [*args.sizes, *([1000] if args.gigabyte else [])]:
        results.append(measure(mb, args.work, args.one_command, args.references))
        print_table(results)  # after each size: a long run shows what it has so far
        if args.json:  # replaced whole: a run stopped while writing keeps the sizes measured before
            write_text(args.json, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
