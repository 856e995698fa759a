"""The user cache for models the stages assemble on first use (POS tagger, MPNet teacher): outside the repository."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$BILSTM_DISTILL_CACHE, else ~/.cache/bilstm-distill (NLTK refuses world-writable data dirs such as /tmp/x)."""
    return Path(os.environ.get("BILSTM_DISTILL_CACHE") or Path.home() / ".cache" / "bilstm-distill")
