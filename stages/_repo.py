"""Imported first by every stage script: puts this checkout's root on sys.path, so the stage runs the distill/
beside it (in a queued or --temp DVC experiment, that snapshot's own code), never an installed copy."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
