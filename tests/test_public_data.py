"""Public-data loading: local folders first, and the real download path against a local HTTP server."""
import functools
import http.server
import threading
from pathlib import Path

import pytest

from alchemist_magics.data import public as public_data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def file_server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SHARED))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_local_folder_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv("ALCHEMIST_CACHE", str(tmp_path / "cache"))
    splits = public_data.fetch_wrench("youtube", SHARED, download=False)
    assert len(splits["train"]) == 1586 and len(splits["labeled"]) == 100 and len(splits["test"]) == 250
    assert not (tmp_path / "cache").exists()  # nothing was downloaded


def test_download_writes_the_cache_atomically_and_loads(tmp_path, monkeypatch, file_server):
    monkeypatch.setenv("ALCHEMIST_CACHE", str(tmp_path / "cache"))
    folder = public_data.download_wrench("youtube", url=file_server)
    assert folder == tmp_path / "cache" / "data" / "youtube"
    assert sorted(p.name for p in folder.iterdir()) == sorted(public_data.WRENCH_FILES)
    assert (folder / "train.json").read_bytes() == (SHARED / "youtube" / "train.json").read_bytes()
    assert [p.name for p in folder.parent.iterdir()] == ["youtube"]  # no staging folder left behind


def test_failed_download_names_the_fix_and_leaves_nothing(tmp_path, monkeypatch, file_server):
    monkeypatch.setenv("ALCHEMIST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(OSError, match="pass data_dir= or set \\$ALCHEMIST_DATA"):
        public_data.download_wrench("no_such_set", url=file_server)
    assert list((tmp_path / "cache" / "data").iterdir()) == []


def test_missing_without_download_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ALCHEMIST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="allow download=True"):
        public_data.fetch_wrench("no_such_set", tmp_path, download=False)
