"""Imported first by every benchmark script: puts this checkout's root on sys.path, so the script runs the distill/
beside it, never an installed copy."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
