"""distill/data/fetch.py: streamed downloads, retried, sha256-checked, written only when whole."""
import pytest

from distill.data.fetch import ChecksumError, download
from distill.io import UserError


def test_good_checksum_writes_the_file(glue_server, tmp_path):
    url, sha, _ = glue_server
    dest = download(f"{url}/SST-2.zip", tmp_path / "dl" / "SST-2.zip", sha, retries=1, timeout=5)
    assert dest.read_bytes() == (tmp_path / "www" / "SST-2.zip").read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["SST-2.zip"]
    other = download(f"{url}/SST-2.zip", tmp_path / "nocheck.zip", None, retries=1, timeout=5)  # mirrors: no pin
    assert other.read_bytes() == dest.read_bytes()


def test_wrong_checksum_writes_nothing_and_is_not_retried(glue_server, tmp_path):
    url, sha, _ = glue_server
    dest = tmp_path / "dl" / "SST-2.zip"
    with pytest.raises(ChecksumError) as err:
        download(f"{url}/SST-2.zip", dest, "0" * 64, retries=3, timeout=5, backoff=30)  # a retry would wait 30 s
    assert str(err.value) == (f"{url}/SST-2.zip: sha256 mismatch (expected {'0' * 64}, got {sha}); nothing written")
    assert isinstance(err.value, UserError)
    assert list(dest.parent.iterdir()) == []


def test_cut_transfer_is_retried_then_fails_leaving_nothing(glue_server, tmp_path):
    url, sha, handler = glue_server
    handler.cut = True
    dest = tmp_path / "dl" / "SST-2.zip"
    with pytest.raises(UserError, match="download failed after 2 attempts: transfer cut short"):
        download(f"{url}/SST-2.zip", dest, sha, retries=2, timeout=5, backoff=0.01)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_http_client_error_fails_at_once(glue_server, tmp_path):
    url, _, _ = glue_server
    with pytest.raises(UserError, match="HTTP 404"):
        download(f"{url}/MNLI.zip", tmp_path / "MNLI.zip", None, retries=3, timeout=5, backoff=30)
    assert not (tmp_path / "MNLI.zip").exists()
