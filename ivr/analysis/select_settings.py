"""What selection may be told (``data.select.*``), checked when the config is read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ivr.tokenizers.byte_level import text_to_piece
from ivr.user_text import require_file, require_utf8_text


@dataclass
class SelectSettings:
    """Settings of the choice of ids to free and strings to give them (``data.select.*``)."""

    num_replacements: int = 2000
    """How many ids to reassign at most (forced tokens included)."""
    min_count: int = 20
    """A new token must occur at least this often in the training texts, and an id is freed only if
    its own token occurs fewer times than this there."""
    max_token_chars: int = 32
    """Longest new token, in characters."""
    protected_tokens: list[str] = field(default_factory=list)
    """Tokens never freed, as readable text (``" the"``) or byte-level piece (``"Ġthe"``)."""
    protected_ids: list[int] = field(default_factory=list)
    """Ids never freed (added and special tokens never are, whatever this says)."""
    forced_tokens_path: str | None = None
    """UTF-8 file of terms that must become tokens, one per line, ahead of the ranked ones. A line is
    taken verbatim (leading spaces count); write it as a JSON string (``" mitochondria"``) to show a leading
    space or escapes. Blank lines and lines with ``#`` in the first column are skipped."""
    general_reference_paths: list[str] = field(default_factory=list)
    """UTF-8 text files of general (non-domain) text; tokens they use are freed last, and their lines count
    against ``max_general_longer_pct``."""
    general_prior_words: int = 50000
    """How many of ``wordfreq``'s most frequent English words feed the general-frequency prior (0: none)."""
    general_code_mb: float = 2.0
    """Megabytes of the Python standard library's sources (a sample of every package; always installed) read as
    general reference text, like ``general_reference_paths``: code and technical English use many ids no word
    list holds (`` callback``, ``utf``, ``-->``), which a domain far from them (another language) would
    otherwise free first (0: none). The domain corpus's own files are left out."""
    per_document_cap: int | None = 4
    """The ranking counts at most this many uses of a pre-token per document (``null``: every use), so a
    string must be spread over many files to rank high: savings then carry over to code by other authors.
    Estimated savings always count every use."""
    validation_fraction: float = 0.2
    """Share of the training documents (by a stable hash of their text) left out of a second ranking, to
    measure its saving on documents it never saw: the savings curve and the held-out figures of the selection
    log (0: no curve). The reassignment itself is ranked on every training document."""
    max_general_longer_pct: float | None = 0.1
    """Refuse replacements until at most this share (%) of general text gets more tokens: of the word list's
    occurrences (``general_prior_words``, by frequency) and of the reference lines (``general_code_mb``,
    ``general_reference_paths``), each
    measured with the remapped tokenizer against the distilled one (``null``: no check)."""

    def __post_init__(self) -> None:
        bad = [f"{name} must be {rule}, got {value}" for name, value, ok, rule in [
            ("num_replacements", self.num_replacements, self.num_replacements >= 0, ">= 0"),
            ("min_count", self.min_count, self.min_count >= 1, ">= 1"),
            ("protected_ids", self.protected_ids, all(i >= 0 for i in self.protected_ids), "ids (>= 0)"),
            ("max_token_chars", self.max_token_chars, self.max_token_chars >= 1, ">= 1"),
            ("per_document_cap", self.per_document_cap, self.per_document_cap is None or self.per_document_cap >= 1,
             ">= 1 or null"),
            ("validation_fraction", self.validation_fraction, 0 <= self.validation_fraction < 1, "in [0, 1)"),
            ("general_prior_words", self.general_prior_words, self.general_prior_words >= 0, ">= 0"),
            ("general_code_mb", self.general_code_mb, self.general_code_mb >= 0, ">= 0"),
            ("max_general_longer_pct", self.max_general_longer_pct,
             self.max_general_longer_pct is None or 0 <= self.max_general_longer_pct <= 100, "in [0, 100] or null"),
        ] if not ok]
        if bad:
            raise ValueError("data.select." + "; data.select.".join(bad))
        for token in self.protected_tokens:
            require_utf8_text(token, "data.select.protected_tokens")
        if self.forced_tokens_path:
            require_file(self.forced_tokens_path, "data.select.forced_tokens_path")
            # ~ expanded once, so that the stamp and the stage read the same file
            self.forced_tokens_path = os.path.expanduser(self.forced_tokens_path)
        for path in self.general_reference_paths:
            require_file(path, "data.select.general_reference_paths")
        self.general_reference_paths = [os.path.expanduser(p) for p in self.general_reference_paths]

    def protected(self, pieces: Sequence[str]) -> set[int]:
        """The ids ``protected_ids`` and ``protected_tokens`` name in a vocabulary of ``pieces`` (indexed by id); an
        id outside it or a token not in it is an error, since it would protect nothing."""
        outside = [i for i in self.protected_ids if not 0 <= i < len(pieces)]
        if outside:
            raise ValueError(f"data.select.protected_ids: {outside} outside the vocabulary's ids [0, {len(pieces)})")
        index = {p: i for i, p in enumerate(pieces)}
        out = set(self.protected_ids)
        for p in self.protected_tokens:
            found = {index[q] for q in (p, text_to_piece(p)) if q in index}
            if not found:
                raise ValueError(f"data.select.protected_tokens: {p!r} is not a token of the vocabulary, as text or "
                                 "as a byte-level piece; it would protect nothing")
            out |= found
        return out
