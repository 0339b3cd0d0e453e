"""Version discovery and the stability rule of `recsys.serving.versions`, and ModelManager's checks (no server)."""
import os
import time

import pytest

from recsys.serving.versions import VersionScanner, VersionWatcher, fingerprint, list_versions


def _fake_version(base, name, content=b"x"):
    path = os.path.join(base, name)
    os.makedirs(os.path.join(path, "variables"), exist_ok=True)
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(content)
    return path


def test_list_versions_keeps_numeric_folders_with_a_saved_model(tmp_path):
    _fake_version(tmp_path, "1")
    _fake_version(tmp_path, "12")
    _fake_version(tmp_path, "tmp")
    _fake_version(tmp_path, "3.partial")
    os.makedirs(tmp_path / "7")  # no saved_model.pb yet
    (tmp_path / "5").write_text("a file, not a folder")
    assert list_versions(str(tmp_path)) == {1: os.path.join(tmp_path, "1"), 12: os.path.join(tmp_path, "12")}


def test_list_versions_missing_base_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        list_versions(str(tmp_path / "missing"))


def test_fingerprint_changes_with_content(tmp_path):
    path = _fake_version(tmp_path, "1", b"a")
    before = fingerprint(path)
    assert fingerprint(path) == before
    with open(os.path.join(path, "variables", "variables.index"), "wb") as f:
        f.write(b"more")
    assert fingerprint(path) != before


def test_scanner_offers_a_new_version_only_once_it_is_stable(tmp_path):
    scanner = VersionScanner(str(tmp_path))
    _fake_version(tmp_path, "1")
    assert scanner.next_version(None, require_stable=False).version == 1  # start-up: no waiting
    _fake_version(tmp_path, "2")
    assert scanner.next_version(1) is None  # first sight: maybe still being copied
    with open(os.path.join(tmp_path, "2", "variables", "variables.data"), "wb") as f:
        f.write(b"still copying")
    assert scanner.next_version(1) is None  # changed since the last poll
    candidate = scanner.next_version(1)  # unchanged across two polls
    assert candidate.version == 2 and candidate.path == os.path.join(tmp_path, "2")
    assert scanner.next_version(2) is None  # nothing above the served version


def test_scanner_skips_a_failed_version_until_it_changes(tmp_path):
    scanner = VersionScanner(str(tmp_path))
    _fake_version(tmp_path, "1")
    _fake_version(tmp_path, "2")
    candidate = scanner.next_version(None, require_stable=False)
    assert candidate.version == 2
    scanner.mark_failed(candidate)
    assert scanner.next_version(None, require_stable=False).version == 1  # falls back to the next highest
    assert scanner.next_version(1) is None
    time.sleep(0.01)
    _fake_version(tmp_path, "2", b"fixed export")
    assert scanner.next_version(1) is None  # changed: wait for it to settle
    assert scanner.next_version(1).version == 2


def test_watcher_polls_and_survives_errors():
    calls = []

    def poll():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise OSError("transient")

    watcher = VersionWatcher(poll, 0.01)
    watcher.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    watcher.stop(timeout=5)
    assert len(calls) >= 3


def test_watcher_rejects_bad_interval():
    with pytest.raises(ValueError, match="poll_seconds"):
        VersionWatcher(lambda: None, 0)


def test_model_manager_argument_checks(tmp_path):
    from recsys.serving.server import ModelManager

    with pytest.raises(FileNotFoundError, match="missing"):
        ModelManager("ctr", str(tmp_path / "missing"))
    _fake_version(tmp_path, ".")  # the base path itself holds saved_model.pb
    with pytest.raises(ValueError, match="numeric version folders"):
        ModelManager("ctr", str(tmp_path))
    with pytest.raises(ValueError, match="max_batch_size"):
        ModelManager("ctr", str(tmp_path / "variables"), max_batch_size=0)
