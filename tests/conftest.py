from __future__ import annotations

import random

import pytest
from standin import standin_distilled_tokenizer


@pytest.fixture(scope="session")
def distilled():
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
