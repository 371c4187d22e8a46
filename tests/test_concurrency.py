"""Two runs on one artifact tree at once: one builds a stage, the other waits and then reuses it."""

from __future__ import annotations

import threading
import time

from ivr import pipeline
from ivr.corpus import CleaningOptions
from ivr.paths import ArtifactPaths


def test_two_runs_of_a_stage_build_it_once(tmp_path, raw_dir, monkeypatch):
    config = pipeline.PipelineConfig(
        paths=ArtifactPaths.from_config(tmp_path / "artifacts", raw_corpora_dir=raw_dir),
        heldout_fraction=0.2,
        original=pipeline.OriginalTokenizer(use_hub=False),
        cleaning=CleaningOptions(),
    )
    pipeline.run_stage(config, "init")
    builds = []
    analyze_corpus = pipeline.analyze_corpus

    def slow_analyze(*args, **kwargs):
        builds.append(threading.get_ident())
        time.sleep(0.5)  # both runs are inside the stage at once unless one waits for the other
        return analyze_corpus(*args, **kwargs)

    monkeypatch.setattr(pipeline, "analyze_corpus", slow_analyze)
    results, errors = [], []

    def run():
        try:
            results.append(pipeline.run_stage(config, "analyze"))
        except Exception as err:  # collected: a thread's exception would otherwise vanish
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(builds) == 1
    assert results[0] == results[1] and all(p.is_file() for p in results[0])
