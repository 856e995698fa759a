"""The export stage's params: none. What it writes follows from the trained models and the task alone (the ONNX
opset and the graph are fixed by distill.inference.export), so no params.yaml key is tracked; the class exists so
the stage loads (and validates) params.yaml like every other stage and tests/test_dvc_deps.py can check it."""
from __future__ import annotations

from dataclasses import dataclass

from distill.config import Params


@dataclass(frozen=True)
class ExportParams(Params):
    section = "export"
