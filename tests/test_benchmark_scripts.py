"""The benchmark scripts: each imports (so a renamed library function fails here, not in a long run) and
documents every option in ``--help``; the fine-tuning experiment scores whole documents."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, benchmark_module

# Runs every script as `python benchmarks/NAME.py --help` would, in one process (the imports are paid once), but
# stops each at parse_args to format its help and read its parser: options whose help is missing or empty.
# SUPPRESS hides an internal option on purpose.
RUNNER = r"""
import argparse, json, runpy, sys, traceback
from pathlib import Path

folder = Path(sys.argv[1])
sys.path.insert(0, str(folder))


class Parsed(Exception):
    pass


seen = {}


def parse_args(self, args=None, namespace=None):
    self.format_help()  # what --help prints: a stray % in a help string fails here
    seen["description"] = bool((self.description or "").strip())
    seen["undocumented"] = [
        action.option_strings[0] if action.option_strings else action.dest
        for action in self._actions
        if not isinstance(action, argparse._HelpAction)
        and action.help != argparse.SUPPRESS and not (action.help or "").strip()
    ]
    raise Parsed


argparse.ArgumentParser.parse_args = parse_args
report = {}
for path in sorted(folder.glob("*.py")):
    seen.clear()
    sys.argv = [str(path), "--help"]
    error = None
    try:
        runpy.run_path(str(path), run_name="__main__")
    except Parsed:
        pass
    except BaseException as err:
        error = "".join(traceback.format_exception_only(type(err), err)).strip()
    report[path.stem] = {"error": error, "parser": bool(seen), **seen}
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def scripts() -> dict:
    done = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "benchmarks")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("REPORT "))


def test_every_script_imports(scripts):
    assert set(scripts) == {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    failed = {name: r["error"] for name, r in scripts.items() if r["error"]}
    assert not failed, failed


def test_every_script_documents_every_option(scripts):
    # common.py holds the shared helpers and runs nothing itself
    without = [name for name, r in scripts.items() if name != "common" and not (r["parser"] and r["description"])]
    assert not without, f"no argument parser with a description: {without}"
    undocumented = {name: r["undocumented"] for name, r in scripts.items() if r.get("undocumented")}
    assert not undocumented, f"options without help: {undocumented}"


def test_scripts_share_helpers_through_common_only():
    # a helper two scripts need lives in common.py: no script runs another one's imports or breaks with its edits
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"common"}
    found = {}
    for path in (ROOT / "benchmarks").glob("*.py"):
        nodes = list(ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
        names = {n.module for n in nodes if isinstance(n, ast.ImportFrom)}
        names |= {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
        if names & scripts:
            found[path.stem] = sorted(names & scripts)
    assert not found, f"scripts importing other scripts: {found}"


def test_experiment_scores_the_same_bytes_with_any_tokenizer(gpt2_bpe):
    experiment = benchmark_module("ivr_experiment")
    texts = ["def f(x):\n    return x + 1\n" * 7, "Ünïcödé text, Ж 中 😀", "x"]
    windows = experiment.whole_documents(gpt2_bpe, texts, window=8)
    # every token of every document is predicted once, so the bytes are the texts' whatever the tokenizer
    assert sum(int(w["n_bytes"]) for w in windows) == sum(len(t.encode()) for t in texts)
    assert all(1 < len(w["input_ids"]) <= 8 for w in windows)
    predicted = [i for w in windows for i in w["input_ids"][1:].tolist()]
    assert predicted == [i for e in gpt2_bpe.encode_batch(texts, add_special_tokens=False) for i in e.ids]
    batch = experiment.pad_windows(windows[-3:])
    assert batch["valid"].sum() == sum(len(w["input_ids"]) - 1 for w in windows[-3:])


def test_selection_memory_is_reported_in_gigabytes(monkeypatch):
    # the kernel counts the peak in KiB: 10^6 KiB are 1.024 GB, not 1.00
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as `python benchmarks/NAME.py` has it: for `common`
    select_memory = benchmark_module("select_memory")
    monkeypatch.setattr(select_memory, "process_peak_kb", lambda: 1_000_000)
    assert select_memory.peak_gb() == pytest.approx(1.024)


# Each (script, option, value): the script run with `OPTION=VALUE` alone, stopped at parse_args as above; a value
# outside the option's range must be refused there, by argparse's error naming the option and the value, not deep
# inside the run (a modulo by zero, an empty sample, numpy refusing a negative seed).
REFUSED = [
    ("additive_limit", "--budget-exponent", "0"), ("additive_limit", "--lang-chars", "0"),
    ("additive_limit", "--examples", "-1"),
    ("byte_level_regex_check", "--texts", "0"), ("byte_level_regex_check", "--seed", "-1"),
    ("byte_level_regex_check", "--examples", "-1"), ("byte_level_regex_check", "--tokenizer", "/no/such/dir"),
    ("context_cuts", "--per-language", "0"), ("context_cuts", "--context", "0"),
    ("context_cuts", "--min-types", "0"),
    ("context_cuts", "--lang-chars", "-5"),
    ("distill_benchmark", "--max-iterations", "0"), ("distill_benchmark", "--also", "/no/such/dir"),
    ("encode_instructions", "--every", "0"),
    ("ivr_benchmark", "--mb", "0"), ("ivr_benchmark", "--general-mb", "-1"),
    ("ivr_benchmark", "--num-replacements", "-1"), ("ivr_benchmark", "--min-count", "0"),
    ("ivr_benchmark", "--distilled", "/no/such/dir"),
    ("ivr_experiment", "--seed", "-1"), ("ivr_experiment", "--threads", "0"), ("ivr_experiment", "--n-layer", "0"),
    ("ivr_experiment", "--n-head", "0"), ("ivr_experiment", "--n-embd", "0"),
    ("ivr_experiment", "--pretrain-steps", "0"), ("ivr_experiment", "--pretrain-lr", "0"),
    ("ivr_experiment", "--doc-mb", "0"), ("ivr_experiment", "--corpus-mb", "-1"),
    ("ivr_experiment", "--distill-iterations", "0"), ("ivr_experiment", "--batch-size", "0"),
    ("ivr_experiment", "--block-size", "1"), ("ivr_experiment", "--lr", "-1"),
    ("ivr_experiment", "--warmup-steps", "-1"), ("ivr_experiment", "--eval-batch-size", "0"),
    ("learned_prior", "--per-language", "0"), ("learned_prior", "--epochs", "0"), ("learned_prior", "--eta", "0"),
    ("learned_prior", "--lang-chars", "0"),
    ("multilingual_distill", "--general-words", "-1"), ("multilingual_distill", "--general-text-words", "-1"),
    ("multilingual_distill", "--general-text-words", "inf"), ("multilingual_distill", "--lang-chars", "0"),
    ("other_regex_distill", "--vocab-size", "0"),
    ("real_model", "--lr", "-1"), ("real_model", "--data-seed", "-1"), ("real_model", "--eval-tokens", "0"),
    ("real_model", "--train-eval-tokens", "0"), ("real_model", "--steps", "0"), ("real_model", "--batch-size", "0"),
    ("real_model", "--block-size", "1"), ("real_model", "--window", "1"), ("real_model", "--eval-batch", "0"),
    ("real_model", "--seeds", "0"), ("real_model", "--warmup", "-1"),
    ("scale", "--sizes", "0"),
    ("select_memory", "--mb", "0"), ("select_memory", "--one", "-3"),
    ("smollm2_end_to_end", "--max-new-tokens", "0"),
    ("split_rule_exactness", "--texts", "0"), ("split_rule_exactness", "--seed", "4294967296"),
    ("split_rule_exactness", "--max-run", "1"), ("split_rule_exactness", "--longest", "0"),
    ("split_rule_exactness", "--examples", "-1"),
    ("throughput_benchmark", "--n-embd", "0"), ("throughput_benchmark", "--n-layer", "0"),
    ("throughput_benchmark", "--n-head", "0"), ("throughput_benchmark", "--vocab-size", "0"),
    ("throughput_benchmark", "--seq-len", "1"), ("throughput_benchmark", "--batch-size", "0"),
    ("throughput_benchmark", "--warmup", "-1"), ("throughput_benchmark", "--lr", "nan"),
    ("throughput_benchmark", "--seed", "-1"),
]
# where 0 (or the largest seed) means something, it stays allowed
ACCEPTED = [
    ("additive_limit", "--examples", "0", 0), ("ivr_benchmark", "--num-replacements", "0", 0),
    ("ivr_experiment", "--warmup-steps", "0", 0), ("multilingual_distill", "--general-words", "0", 0),
    ("multilingual_distill", "--general-text-words", "0", 0.0), ("real_model", "--warmup", "0", 0),
    ("split_rule_exactness", "--seed", "4294967295", 4294967295), ("throughput_benchmark", "--warmup", "0", 0),
]
OPTION_RUNNER = r"""
import argparse, json, runpy, sys, traceback
from pathlib import Path

folder = Path(sys.argv[1])
sys.path.insert(0, str(folder))


class Stop(Exception):
    pass


parse = argparse.ArgumentParser.parse_args


def parse_args(self, args=None, namespace=None):
    raise Stop("parsed", vars(parse(self, args, namespace)))


def error(self, message):
    raise Stop("refused", message)


argparse.ArgumentParser.parse_args, argparse.ArgumentParser.error = parse_args, error
report = []
for script, option, value in json.loads(sys.argv[2]):
    sys.argv = [str(folder / f"{script}.py"), f"{option}={value}"]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        outcome = ["ran", None]
    except Stop as stop:
        kind, got = stop.args
        outcome = [kind, got if kind == "refused" else got[option.lstrip("-").replace("-", "_")]]
    except BaseException as err:
        outcome = ["error", "".join(traceback.format_exception_only(type(err), err)).strip()]
    report.append(outcome)
print("REPORT " + json.dumps(report, default=str))  # a parsed Path as its text
"""


@pytest.fixture(scope="module")
def option_outcomes() -> dict:
    cases = [case[:3] for case in REFUSED + ACCEPTED]
    done = subprocess.run([sys.executable, "-c", OPTION_RUNNER, str(ROOT / "benchmarks"), json.dumps(cases)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return dict(zip(map(tuple, cases), json.loads(lines[-1].removeprefix("REPORT "))))


@pytest.mark.parametrize("script, option, value", REFUSED)
def test_a_value_out_of_range_is_refused_at_parsing(option_outcomes, script, option, value):
    kind, message = option_outcomes[script, option, value]
    assert kind == "refused" and message.startswith(f"argument {option}: {value}: "), (kind, message)


@pytest.mark.parametrize("script, option, value, parsed", ACCEPTED)
def test_a_zero_with_a_meaning_is_accepted(option_outcomes, script, option, value, parsed):
    assert option_outcomes[script, option, value] == ["parsed", parsed]


def _disk_fills_up(monkeypatch):
    """Every ``Path.write_text`` from now on writes a third of its text and then fails, as on a full disk."""
    from pathlib import Path

    def write_text(self, data, encoding=None, errors=None, newline=None):
        with open(self, "w", encoding=encoding) as f:
            f.write(data[: len(data) // 3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", write_text)


def test_real_model_results_survive_a_failed_rewrite(tmp_path, monkeypatch):
    # each part rewrites results.md and results.json: a write that fails must leave the parts already written
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    real_model = benchmark_module("real_model")
    bench = object.__new__(real_model.Bench)
    bench.out, bench.lines, bench.results = tmp_path, [], {"part1": {"domain": 1.0}}
    bench.emit("part 1")
    _disk_fills_up(monkeypatch)
    bench.results["part2"] = {"domain": 2.0}
    with pytest.raises(OSError):
        bench.emit("part 2")
    assert (tmp_path / "results.md").read_text(encoding="utf-8") == "part 1\n"
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8")) == {"part1": {"domain": 1.0}}


def test_scale_results_survive_a_failed_rewrite(tmp_path, monkeypatch):
    # --json is rewritten after each size: a write that fails must leave the sizes already measured
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    scale = benchmark_module("scale")
    monkeypatch.setattr(scale, "measure", lambda mb, *args: {"megabytes": mb})
    # the second size's table is printed just before its results are written: the disk is full from then on
    monkeypatch.setattr(scale, "print_table", lambda results: len(results) == 2 and _disk_fills_up(monkeypatch))
    out = tmp_path / "results.json"
    monkeypatch.setattr(sys, "argv", ["scale.py", "--sizes", "8", "32", "--json", str(out)])
    with pytest.raises(OSError):
        scale.main()
    assert json.loads(out.read_text(encoding="utf-8")) == [{"megabytes": 8}]


def test_distill_benchmark_throughput_only_needs_a_fitted_tokenizer_first(tmp_path, monkeypatch):
    # re-timing reads OUT/tokenizer: without one the run stops at once, naming it, not with a traceback later
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    distill_benchmark = benchmark_module("distill_benchmark")
    monkeypatch.setattr(sys, "argv", ["distill_benchmark.py", "--throughput-only", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"no tokenizer\.json in .*: fit one first"):
        distill_benchmark.main()


def test_scale_peak_memory_is_printed_in_the_unit_its_column_names(tmp_path, monkeypatch, capsys):
    # the kernel counts a child's peak in KiB: 2^20 KiB are 1,024 MiB or 1,074 MB
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    scale = benchmark_module("scale")
    usage = argparse.Namespace(ru_utime=1.0, ru_stime=0.0, ru_maxrss=2**20)
    monkeypatch.setattr(scale.subprocess, "Popen", lambda *a, **k: argparse.Namespace(pid=1))
    monkeypatch.setattr(scale.os, "wait4", lambda pid, options: (pid, 0, usage))
    measured = scale.run_command(["init"], tmp_path / "ivr.log")
    reference = {"wall": 1.0, "cpu": 1.0, "tokens": 1}
    scale.print_table([{"megabytes": 8, "references": [reference], "startup": measured, "stages": {"init": measured},
                        "distilled": {"corpus_word_types": 1, "fit_word_types": 1, "split_rules": 0, "word_rules": 0,
                                      "regex_chars": 1, "tokenizer_json_bytes": 1}}])
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "peak RSS" in line)
    unit = header.split("peak RSS (")[1].split(")")[0]
    column = [c.strip() for c in header.split("|")].index(f"peak RSS ({unit})")
    row = next(line for line in lines if line.startswith("| 8 MB | init |"))
    assert [c.strip() for c in row.split("|")][column] == {"MiB": "1,024", "MB": "1,074"}[unit]


def test_select_memory_passes_on_the_error_of_a_size_that_fails(tmp_path):
    # each size runs in a child process: its error must reach the terminal, not only "returned non-zero exit status"
    distilled = tmp_path / "distilled"
    distilled.mkdir()
    (distilled / "tokenizer.json").write_text("{cut short", encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "select_memory.py"), "--distilled",
                           str(distilled), "--mb", "0.01"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "not a tokenizer file the tokenizers library can read" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr.split("not a tokenizer file")[1]
