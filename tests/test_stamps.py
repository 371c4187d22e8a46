"""Stage stamps cannot go stale: every module that decides a stage's outputs is in its code fingerprint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ivr import pipeline, pipeline_config, staging, stamps
from ivr.collector import collector_paused
from ivr.paths import ArtifactPaths
from ivr.stamps import PACKAGE_ROOT, code_fingerprint, module_closure
from ivr.tokenizers.remap import RemapSettings

STAGE_FUNCTIONS = {**pipeline.RUNNERS, "datasets": pipeline.build_datasets}


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    shutil.copytree(PACKAGE_ROOT / "ivr", root / "ivr", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("analyze", {"ivr.analysis.frequency", "ivr.cleaned_corpus"}),
        (
            "distill-tokenizer",
            {"ivr.tokenizers.byte_level_regex", "ivr.tokenizers.bpe", "ivr.tokenizers.verify", "ivr.tokenizers.unigram"},
        ),
        ("select", {"ivr.analysis.select", "ivr.tokenizers.candidates"}),
        ("remap", {"ivr.tokenizers.remap", "ivr.tokenizers.remap_rules"}),
        ("align", {"ivr.embeddings", "ivr.causal_lm", "ivr.tokenizers.remap_rules"}),
        ("datasets", {"ivr.packing"}),
    ],
)
def test_closure_reaches_the_modules_that_decide_each_stage(stage, expected):
    closure = set(module_closure(staging.code_modules(STAGE_FUNCTIONS[stage])))
    assert expected <= closure, expected - closure


def test_a_later_stage_keys_on_the_earlier_stages_outputs_not_on_their_code():
    # select brings distillation up to date first; a change to the fit's code reaches select through the distilled
    # tokenizer's hash in its key, not through its code fingerprint (which would rebuild it for identical input)
    for stage in ("select", "remap", "align"):
        closure = module_closure(staging.code_modules(STAGE_FUNCTIONS[stage]))
        assert "ivr.tokenizers.distill.lp_fit" not in closure and "ivr.tokenizers.distill.stage" not in closure


def test_a_stages_key_is_read_under_the_lock(tmp_path, monkeypatch):
    from contextlib import contextmanager

    held = []

    @contextmanager
    def lock(paths):
        held.append(True)
        yield
        held.pop()

    monkeypatch.setattr(staging, "artifacts_lock", lock)
    paths = ArtifactPaths.from_config(tmp_path)
    out = paths.reports_dir / "out.txt"
    out.parent.mkdir(parents=True)
    seen = []

    def key():  # another run may rebuild what the key hashes until the lock is held
        seen.append(bool(held))
        return {"inputs": 1}

    staging.staged("analyze", paths, key, [out], lambda: out.write_text("x"), pipeline.analyze)
    assert seen == [True]


def test_distillation_closure_holds_its_rule_builders():
    closure = module_closure(staging.code_modules(pipeline.distill))
    assert any(m.endswith("word_rules") for m in closure)
    assert any(m.endswith("split_rules") for m in closure)


@pytest.mark.parametrize("stage", ["distill-tokenizer", "align"])  # the widest closures; a process each
def test_closure_holds_every_module_that_importing_a_stage_loads(stage):
    # measured by the interpreter, not by the closure's own reading of the imports: the stage's modules imported
    # in a fresh process, and every `ivr` module that loads must be in the closure
    probe = ("import importlib, json, sys\n"
             "for m in json.loads(sys.argv[1]): importlib.import_module(m)\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ivr.'))))")
    roots = sorted(staging.code_modules(STAGE_FUNCTIONS[stage]))
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(roots)], cwd=PACKAGE_ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(json.loads(done.stdout))
    assert len(loaded) > 10 and loaded <= set(module_closure(roots)), loaded - set(module_closure(roots))


@pytest.mark.parametrize("stage", sorted(STAGE_FUNCTIONS))
def test_editing_any_module_of_a_stage_changes_its_fingerprint(stage, package_copy):
    fn = STAGE_FUNCTIONS[stage]
    before = staging.stage_code_fingerprint(fn, package_copy)
    modules = module_closure(staging.code_modules(fn), package_copy) + [fn.__module__]  # its own module too
    assert len(modules) > 3
    for name in modules:
        path = package_copy.joinpath(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit\n")
        try:
            assert staging.stage_code_fingerprint(fn, package_copy) != before, name
        finally:
            path.write_bytes(original)
    assert staging.stage_code_fingerprint(fn, package_copy) == before


def test_a_module_outside_the_closure_does_not_change_the_fingerprint(package_copy):
    closure = module_closure(["ivr.analysis.frequency"], package_copy)
    assert "ivr.cli" not in closure
    before = code_fingerprint(["ivr.analysis.frequency"], package_copy)
    cli = package_copy / "ivr" / "cli.py"
    original = cli.read_bytes()
    cli.write_bytes(original + b"\n# an edit\n")
    try:
        assert code_fingerprint(["ivr.analysis.frequency"], package_copy) == before
    finally:
        cli.write_bytes(original)


def test_relative_and_function_level_imports_are_followed(tmp_path):
    pkg = tmp_path / "ivr"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from . import b\n\ndef f():\n    from ivr import c\n")
    (pkg / "sub" / "b.py").write_text("X = 1\n")
    (pkg / "c.py").write_text("from .sub.b import X\n")
    assert module_closure(["ivr.sub.a"], tmp_path) == ["ivr", "ivr.c", "ivr.sub", "ivr.sub.a", "ivr.sub.b"]


def test_a_stage_rebuilds_when_its_code_changes_and_only_then(tmp_path, package_copy, monkeypatch):
    import ivr.stamps

    monkeypatch.setattr(ivr.stamps, "PACKAGE_ROOT", package_copy)
    paths = ArtifactPaths.from_config(tmp_path)
    out = tmp_path / "out.txt"
    builds = []

    def build():
        builds.append(1)
        out.write_text("x")

    def run():
        staging.staged("analyze", paths, lambda: {"inputs": 1}, [out], build, pipeline.analyze)

    run()
    run()
    assert len(builds) == 1
    frequency = package_copy / "ivr" / "analysis" / "frequency.py"
    original = frequency.read_bytes()
    frequency.write_bytes(original + b"\n# an edit\n")
    try:
        run()
        run()
    finally:
        frequency.write_bytes(original)
    assert len(builds) == 2


def test_a_new_version_of_a_deciding_library_rebuilds(tmp_path, monkeypatch):
    paths = ArtifactPaths.from_config(tmp_path)
    out = tmp_path / "out.txt"
    builds = []

    def run():
        staging.staged("analyze", paths, lambda: {"inputs": 1}, [out], lambda: builds.append(out.write_text("x")), pipeline.analyze)

    run()
    run()
    version = stamps.metadata.version
    monkeypatch.setattr(stamps.metadata, "version", lambda name: "99.0" if name == "tokenizers" else version(name))
    run()
    assert len(builds) == 2
    # wordfreq's lists feed the fit words and selection's prior; the Python version, the stdlib text they read
    monkeypatch.setattr(stamps.metadata, "version", lambda name: "99.0" if name in ("tokenizers", "wordfreq") else version(name))
    run()
    monkeypatch.setattr(stamps.platform, "python_version", lambda: "3.99.0")
    run()
    assert len(builds) == 4


def test_a_stage_builds_with_the_garbage_collector_paused_and_restores_it(tmp_path, monkeypatch):
    import gc

    paths = ArtifactPaths.from_config(tmp_path)
    out = tmp_path / "out.txt"
    seen = []

    def build():
        seen.append(gc.isenabled())
        raise RuntimeError("a stage that fails")

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        staging.staged("analyze", paths, lambda: {"inputs": 1}, [out], build, pipeline.analyze)
    assert seen == [False] and gc.isenabled()
    collections = []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(a))
    gc.disable()  # a caller that had it off keeps it off, and a nested pause collects nothing
    try:
        with collector_paused():
            pass
        assert not gc.isenabled() and collections == []
    finally:
        gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() and collections == [(1,)]


@pytest.mark.parametrize("stage, rules_path, first", [("select", None, "distill"), ("remap", None, "select"),
                                                       ("remap", "rules.yaml", "distill")])
def test_a_stage_brings_the_stage_it_reads_up_to_date_first(tmp_path, monkeypatch, stage, rules_path, first):
    # a distillation that failed `strict` or whose settings changed leaves a tokenizer no stamp vouches for
    class Called(Exception):
        pass

    def stop(config):
        raise Called(first)

    monkeypatch.setattr(pipeline, first, stop)
    if rules_path:  # a rules file named in the settings must exist when they are read
        rules_path = tmp_path / rules_path
        rules_path.write_text("", encoding="utf-8")
    config = pipeline_config.PipelineConfig(paths=ArtifactPaths.from_config(tmp_path),
                                     remap=RemapSettings(remap_rules_path=rules_path))
    with pytest.raises(Called, match=first):
        pipeline.run_stage(config, stage)


def test_a_truncated_or_replaced_output_is_rebuilt_not_trusted(tmp_path):
    paths = ArtifactPaths.from_config(tmp_path)
    folder, report = tmp_path / "tokenizer", tmp_path / "report.md"
    builds = []

    def build():
        builds.append(1)
        folder.mkdir(exist_ok=True)
        (folder / "tokenizer.json").write_text("{" + "x" * 100 + "}")
        report.write_text("a report")

    def run():
        staging.staged("analyze", paths, lambda: {"inputs": 1}, [folder, report], build, pipeline.analyze, unsigned=[report])

    run()
    run()
    assert len(builds) == 1
    (folder / "tokenizer.json").write_text("{xx")  # truncated after the stamp was written
    run()
    assert len(builds) == 2
    (folder / "stray.bin").write_bytes(b"\0")  # a file added inside an output folder
    run()
    assert len(builds) == 3
    report.write_text("rewritten by another command")  # unsigned: need only exist
    run()
    assert len(builds) == 3
    report.unlink()
    run()
    assert len(builds) == 4


def test_a_key_that_json_writes_as_other_values_is_current_on_the_next_run(tmp_path):
    # remap keys on data.select.protected_ids and protected_tokens as given: a tuple (SelectSettings from Python)
    # is written as a list, and compared with the tuple again the stamp never matched, rebuilding every run
    paths = ArtifactPaths.from_config(tmp_path)
    out = tmp_path / "out.txt"
    builds = []

    def run(protected):
        staging.staged("remap", paths, lambda: {"protected": protected}, [out],
                       lambda: builds.append(out.write_text("x")), pipeline.remap)

    run([(5, 7), ("def",)])
    run([(5, 7), ("def",)])
    assert len(builds) == 1
    run([(5, 8), ("def",)])
    assert len(builds) == 2  # another value still rebuilds


def test_a_failed_build_leaves_no_stamp_and_the_next_run_rebuilds(tmp_path):
    paths = ArtifactPaths.from_config(tmp_path)
    out = tmp_path / "out.txt"
    builds = []

    def good():
        builds.append("good")
        out.write_text("good")

    def bad():
        builds.append("bad")
        out.write_text("half")
        raise RuntimeError("killed while writing")

    staging.staged("analyze", paths, lambda: {"inputs": 1}, [out], good, pipeline.analyze)
    with pytest.raises(RuntimeError):  # other inputs: the stage rebuilds, and fails with its output written
        staging.staged("analyze", paths, lambda: {"inputs": 2}, [out], bad, pipeline.analyze)
    assert not paths.stamp("analyze").exists()
    # the first inputs again: the old stamp would have matched them, but it is gone with the failed build
    staging.staged("analyze", paths, lambda: {"inputs": 1}, [out], good, pipeline.analyze)
    assert builds == ["good", "bad", "good"] and out.read_text() == "good"


def test_an_unreadable_stamp_means_a_rebuild(tmp_path, caplog):
    paths = ArtifactPaths.from_config(tmp_path)
    out = tmp_path / "out.txt"
    builds = []
    run = lambda: staging.staged("analyze", paths, lambda: {"inputs": 1}, [out], lambda: builds.append(out.write_text("x")),  # noqa: E731
                                  pipeline.analyze)
    run()
    paths.stamp("analyze").write_text('{"key": {"inp')
    with caplog.at_level("WARNING"):
        run()
    assert len(builds) == 2 and str(paths.stamp("analyze")) in caplog.text
    run()
    assert len(builds) == 2


def test_a_moved_artifact_tree_keeps_its_stamps(tmp_path):
    builds = []

    def run(root):
        paths = ArtifactPaths.from_config(root)
        out = paths.reports_dir / "out.txt"

        def build():
            builds.append(1)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("x")

        staging.staged("analyze", paths, lambda: {"inputs": 1}, [out], build, pipeline.analyze)

    run(tmp_path / "a")
    (tmp_path / "a").rename(tmp_path / "b")  # a move keeps sizes and modification times
    run(tmp_path / "b")
    assert len(builds) == 1


def test_the_distillation_key_holds_the_word_lists_words_and_the_special_tokens_map(tmp_path, raw_dir):
    from dataclasses import replace

    from ivr.corpus import CleaningOptions
    from ivr.tokenizers.distill import DistillSettings

    words = tmp_path / "words.txt"
    words.write_text("alpha\n")
    config = pipeline_config.PipelineConfig(
        paths=ArtifactPaths.from_config(tmp_path / "artifacts", raw_corpora_dir=raw_dir), heldout_fraction=0.2,
        original=pipeline_config.OriginalTokenizer(use_hub=False), cleaning=CleaningOptions(),
        distill=DistillSettings(word_list=str(words)),
    )
    pipeline.run_stage(config, "init")
    first = pipeline.distill_key(config)
    assert pipeline.distill_key(config) == first
    words.write_text("alpha\nbeta\n")  # the same path, other words
    second = pipeline.distill_key(config)
    assert second != first
    (config.paths.original_tokenizer_dir / "special_tokens_map.json").write_text('{"eos_token": "<|endoftext|>"}')
    assert pipeline.distill_key(config) != second
    assert pipeline.distill_key(replace(config, distill=DistillSettings()))["word_list"] is None


def test_analyze_is_not_keyed_on_the_held_out_fraction(tmp_path, raw_dir, monkeypatch):
    from dataclasses import replace

    from ivr.corpus import CleaningOptions

    config = pipeline_config.PipelineConfig(
        paths=ArtifactPaths.from_config(tmp_path / "artifacts", raw_corpora_dir=raw_dir), heldout_fraction=0.2,
        original=pipeline_config.OriginalTokenizer(use_hub=False), cleaning=CleaningOptions(),
    )
    pipeline.run_stage(config, "init")
    keys = []
    monkeypatch.setattr(pipeline, "staged", lambda stage, paths, key, *rest, **kw: keys.append(key()))
    pipeline.analyze(config)
    pipeline.analyze(replace(config, heldout_fraction=0.5))  # every document is encoded either way
    assert keys[0] == keys[1] and "corpus" in keys[0]


def test_align_reads_the_rules_of_the_remapped_tokenizer_it_is_given(tmp_path):
    config = pipeline_config.PipelineConfig(paths=ArtifactPaths.from_config(tmp_path / "artifacts"))
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError, match=rf"no remap rules at {elsewhere / 'remap_rules.yaml'}"):
        pipeline.align(config, remapped_tokenizer_dir=elsewhere)


def test_a_settings_method_a_stage_calls_is_in_its_fingerprint(package_copy, tmp_path):
    # remap calls config.select.protected(), though `select` is also the name of a stage whose code it skips
    assert "ivr.analysis.select_settings" in staging.settings_modules(pipeline.remap)
    edited = tmp_path / "src"
    shutil.copytree(package_copy, edited)
    settings = edited / "ivr" / "analysis" / "select_settings.py"
    settings.write_text(settings.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert (staging.stage_code_fingerprint(pipeline.remap, package_copy)
            != staging.stage_code_fingerprint(pipeline.remap, edited))


@pytest.mark.parametrize(("stage", "module"), [("align", "tokenizers/remap.py"),
                                             ("select", "tokenizers/distill/settings.py"),
                                             ("remap", "tokenizers/distill/settings.py")])
def test_a_stage_is_not_keyed_on_the_settings_of_the_stage_it_brings_up_to_date(package_copy, tmp_path, stage, module):
    # align calls remap(config), select and remap call distill(config): the names of settings fields, used as the
    # earlier stages, whose outputs are in the key by hash; editing their code must not rebuild the later stage
    fn = STAGE_FUNCTIONS[stage]
    edited = tmp_path / "src"
    shutil.copytree(package_copy, edited)
    path = edited / "ivr" / module
    path.write_text(path.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    assert staging.stage_code_fingerprint(fn, package_copy) == staging.stage_code_fingerprint(fn, edited)


def test_the_verification_is_not_keyed_on_the_fit_code():
    # `config.verify` names a setting, not the `verify` command, which brings the distillation up to date
    assert "ivr.tokenizers.distill.stage" not in staging.code_modules(pipeline._verified)


def test_the_datasets_key_is_read_under_the_lock(tmp_path, monkeypatch):
    """Another run may rebuild the tokenizer the key hashes until the lock is held: blocks of its tokenizer must
    not land under this one's key."""
    from contextlib import contextmanager

    held, seen = [], []

    @contextmanager
    def lock(paths):
        held.append(True)
        yield
        held.pop()

    class Keyed(Exception):
        pass

    def key(*args):
        seen.append(bool(held))
        raise Keyed

    from ivr import dataset_cache

    monkeypatch.setattr(dataset_cache, "artifacts_lock", lock)
    monkeypatch.setattr(dataset_cache, "dataset_key", key)
    with pytest.raises(Keyed):
        dataset_cache.build_datasets(ArtifactPaths.from_config(tmp_path), "remapped", 64, 0.05)
    assert seen == [True]


def test_a_run_waiting_for_another_runs_lock_says_so(tmp_path, monkeypatch, caplog):
    import logging
    import threading

    from filelock import FileLock

    paths = ArtifactPaths.from_config(tmp_path)
    paths.root.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(staging, "LOCK_NOTICE_SECONDS", 0.05)
    held, released = threading.Event(), threading.Event()

    def other_run():  # filelock refuses a second instance in one thread; another thread stands for another run
        with FileLock(paths.lock):
            held.set()
            released.wait(5)

    thread = threading.Thread(target=other_run)
    thread.start()
    held.wait(5)
    threading.Timer(0.3, released.set).start()
    with caplog.at_level(logging.INFO, logger="ivr.staging"), staging.artifacts_lock(paths):
        pass
    thread.join()
    assert f"waiting for {paths.lock}" in caplog.text


def test_a_read_only_artifact_tree_is_named_with_what_to_do(tmp_path, monkeypatch):
    import errno

    from filelock import FileLock

    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(FileLock, "acquire", refuse)
    with pytest.raises(PermissionError, match="read-only file system; ivr needs an artifact tree it can write"):
        with staging.artifacts_lock(ArtifactPaths.from_config(tmp_path)):
            pass


def test_the_remap_stages_own_rules_file_is_refused_as_its_input(tmp_path):
    paths = ArtifactPaths.from_config(tmp_path)
    paths.remap_rules.parent.mkdir(parents=True)
    paths.remap_rules.write_text("[]\n", encoding="utf-8")
    config = pipeline_config.PipelineConfig(paths=paths, remap=RemapSettings(remap_rules_path=str(paths.remap_rules)))
    with pytest.raises(ValueError, match="which the remap stage rewrites whole; copy it elsewhere"):
        pipeline.run_stage(config, "remap")
    # a file of one's own kept in that folder would be deleted by the rewrite just the same
    mine = paths.remapped_tokenizer_dir / "my_rules.yaml"
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("[]\n", encoding="utf-8")
    config = pipeline_config.PipelineConfig(paths=paths, remap=RemapSettings(remap_rules_path=str(mine)))
    with pytest.raises(ValueError, match="my_rules.yaml is in .*remapped, which the remap stage rewrites whole"):
        pipeline.run_stage(config, "remap")
    assert mine.is_file()


def test_a_stage_s_modules_are_those_it_uses_by_name_or_by_attribute_but_not_its_own():
    """A module a stage uses by attribute (``stamps.file_sha256``) decides its outputs as much as a function it
    imports. Its own module is hashed whole already; its import closure would bring every other stage's code in."""
    import ivr.stamps

    own = type("Own", (), {"__module__": "ivr.some_stage"})  # a class of the stage's own module
    namespace = {"__name__": "ivr.some_stage", "stamps": ivr.stamps, "ArtifactPaths": ArtifactPaths, "Own": own}
    exec("def stage(root):\n    return stamps.file_sha256(ArtifactPaths.from_config(root).lock), Own()\n", namespace)
    assert staging.code_modules(namespace["stage"]) == {"ivr.stamps", "ivr.paths"}


def test_outputs_named_by_a_function_are_checked_as_the_last_build_left_them_and_returned(tmp_path):
    """align's optional files: the list is asked before the check and after a build. The caller gets the paths,
    and an optional output gone since the build is rebuilt, while one left as it was is not."""
    paths = ArtifactPaths.from_config(tmp_path)
    main, optional = tmp_path / "main.bin", tmp_path / "optional.bin"
    builds = []

    def build():
        builds.append(1)
        main.write_text("x")
        optional.write_text("y")

    def run():
        return staging.staged("analyze", paths, lambda: {"inputs": 1},
                              lambda: [p for p in (main, optional) if p.exists()], build, pipeline.analyze)

    assert run() == [main, optional] and run() == [main, optional] and len(builds) == 1
    optional.unlink()
    assert run() == [main, optional] and len(builds) == 2


def test_an_artifact_tree_the_user_may_not_write_is_named_with_what_to_do(tmp_path, monkeypatch):
    """A lock file that cannot be created (a tree of another user's) is one error naming the tree, not
    filelock's bare permission error."""
    import errno

    from filelock import FileLock

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(FileLock, "acquire", refuse)
    with pytest.raises(PermissionError, match=r"cannot create the lock file \.lock \(Permission denied\); ivr needs "
                                              r"an artifact tree it can write \(data\.artifacts_dir\)"):
        with staging.artifacts_lock(ArtifactPaths.from_config(tmp_path)):
            pass
