"""Two runs on one artifact tree at once: one builds a stage, the other waits and then reuses it."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from ivr import pipeline, pipeline_config
from ivr.corpus import CleaningOptions
from ivr.paths import ArtifactPaths


def config_for(root: Path, raw_dir: Path) -> pipeline_config.PipelineConfig:
    return pipeline_config.PipelineConfig(
        paths=ArtifactPaths.from_config(root / "artifacts", raw_corpora_dir=raw_dir),
        heldout_fraction=0.2,
        original=pipeline_config.OriginalTokenizer(use_hub=False),
        cleaning=CleaningOptions(),
    )


def analyze_slowly(root: Path, raw_dir: Path, results, start) -> None:
    """One run, in a process of its own: the stage is slow enough that both runs are inside it at once unless
    one waits for the other; each build leaves a line in ``builds.txt``."""
    analyze_corpus = pipeline.analyze_corpus

    def slow_analyze(*args, **kwargs):
        with open(root / "builds.txt", "a") as f:
            f.write("built\n")
        time.sleep(1.0)
        return analyze_corpus(*args, **kwargs)

    pipeline.analyze_corpus = slow_analyze
    start.wait()  # both runs begin together, however long each process took to start
    results.put([str(p) for p in pipeline.run_stage(config_for(root, raw_dir), "analyze")])


def test_two_runs_of_a_stage_build_it_once(tmp_path, raw_dir):
    pipeline.run_stage(config_for(tmp_path, raw_dir), "init")
    # processes, as two runs are: a lock that only held within one process would let both build
    spawn = multiprocessing.get_context("spawn")
    results, start = spawn.Queue(), spawn.Barrier(2)
    runs = [spawn.Process(target=analyze_slowly, args=(tmp_path, raw_dir, results, start)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    assert [run.exitcode for run in runs] == [0, 0]
    assert (tmp_path / "builds.txt").read_text().count("built") == 1
    first, second = results.get(timeout=5), results.get(timeout=5)
    assert first == second and all(Path(p).is_file() for p in first)
