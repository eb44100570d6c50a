"""The physical backup's stream, without a server: a real tar (the archive MySQL's clone is stored
in) piped through the real zstd into a directory storage, and back into an empty data directory,
checked by sha256; what it refuses (a failing tool, corrupt data, unknown compression)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from mysql_operator.backup.manifest import BackupCorrupt, Manifest
from mysql_operator.backup.physical import (
    GZIP,
    MBSTREAM,
    NO_COMPRESSION,
    TAR,
    ZSTD,
    PhysicalBackupFailed,
    PhysicalRestoreFailed,
    PhysicalTools,
    _stream,
    _tool_version,
    compress_command,
    data_key,
    decompress_command,
    extract_command,
    prepare_command,
    tool_series_mismatch,
    unpack_physical,
)
from mysql_operator.backup.storage import DirectoryStorage
from mysql_operator.conventions import Flavor

TOOLS = PhysicalTools()


def test_commands_per_compression_and_archive() -> None:
    assert compress_command(TOOLS, ZSTD, 1) == ["zstd", "-1", "-T0", "-q", "-c"]
    assert compress_command(TOOLS, NO_COMPRESSION, 1) is None
    assert decompress_command(TOOLS, ZSTD) == ["zstd", "-d", "-q", "-c"]
    assert decompress_command(TOOLS, GZIP) == ["gzip", "-d", "-c"]  # backups of earlier versions
    assert decompress_command(TOOLS, NO_COMPRESSION) is None
    assert extract_command(TOOLS, MBSTREAM, Path("/d")) == ["mbstream", "-x", "-C", "/d"]
    assert extract_command(TOOLS, TAR, Path("/d")) == ["tar", "-C", "/d", "-xf", "-"]
    assert prepare_command(TOOLS, Path("/d"), 1 << 30) == [
        "mariadb-backup", "--prepare", "--target-dir=/d", f"--use-memory={1 << 30}"]
    assert data_key("b1", TAR) == "backups/b1/data.tar.zst"
    assert data_key("b1", MBSTREAM, GZIP) == "backups/b1/data.mbstream.gz"
    assert data_key("b1", TAR, NO_COMPRESSION) == "backups/b1/data.tar"
    with pytest.raises(PhysicalBackupFailed):
        compress_command(TOOLS, GZIP, 1)  # read, no longer written
    with pytest.raises(PhysicalRestoreFailed):
        decompress_command(TOOLS, "lzma")


def make_datadir(path: Path) -> dict[str, bytes]:
    """Files like a data directory's: one large and poorly compressible, some small."""
    files = {"ibdata1": os.urandom(3 << 20) + b"\0" * (2 << 20), "shop/orders.ibd": b"row " * 50_000,
             "mysql.ibd": b"", "auto.cnf": b"[auto]\n"}
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return files


def read_tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def physical_manifest(key: str, size: int, raw: int, sha256: str, compression: str, **extra: Any) -> Manifest:
    return Manifest(name="b1", cluster="shop-db", flavor=Flavor.MYSQL, server_version="9.7.4",
                    instance="db-0", started_at="2026-11-25T12:00:00.000Z",
                    finished_at="2026-11-25T12:00:01.000Z", databases=["shop"], dump_key=key, size=size,
                    uncompressed_size=raw, sha256=sha256, compression=compression, method="physical",
                    archive=TAR, **extra)


def store_tree(source: Path, storage: DirectoryStorage, compression: str) -> Manifest:
    key = data_key("b1", TAR, compression)
    stream, _ = _stream(storage, key, [TOOLS.tar, "-C", str(source), "-cf", "-", "."],
                        compress_command(TOOLS, compression, 1), "tar", ())
    return physical_manifest(key, stream.size, stream.uncompressed_size, stream.sha256.hexdigest(),
                             compression)


@pytest.mark.parametrize("compression", [ZSTD, NO_COMPRESSION])
def test_a_tree_goes_through_storage_and_back_unchanged(tmp_path: Path, compression: str) -> None:
    source = tmp_path / "source"
    files = make_datadir(source)
    storage = DirectoryStorage(tmp_path / "pvc")
    manifest = store_tree(source, storage, compression)
    stored = (tmp_path / "pvc" / manifest.dump_key).read_bytes()
    assert manifest.size == len(stored) and manifest.sha256 == hashlib.sha256(stored).hexdigest()
    assert manifest.uncompressed_size > sum(len(d) for d in files.values())  # the tar's headers too
    if compression == ZSTD:
        assert manifest.size < manifest.uncompressed_size * 0.8  # the zeros and the repeated rows shrink
    else:
        assert manifest.size == manifest.uncompressed_size
    timings: dict[str, float] = {}
    unpack_physical(storage, manifest, tmp_path / "datadir", timings=timings)
    assert read_tree(tmp_path / "datadir") == files
    assert set(timings) == {"unpack"}  # a tar needs no prepare


def test_a_backup_of_an_earlier_version_gzip_restores(tmp_path: Path) -> None:
    source = tmp_path / "source"
    files = make_datadir(source)
    storage = DirectoryStorage(tmp_path / "pvc")
    plain = store_tree(source, storage, NO_COMPRESSION)
    data = gzip.compress((tmp_path / "pvc" / plain.dump_key).read_bytes(), compresslevel=1)
    key = data_key("b1", TAR, GZIP)
    storage.put_bytes(key, data)
    digest = hashlib.sha256(data).hexdigest()
    manifest = physical_manifest(key, len(data), plain.uncompressed_size, digest, GZIP)
    unpack_physical(storage, manifest, tmp_path / "datadir")
    assert read_tree(tmp_path / "datadir") == files


def test_a_failing_copy_tool_stores_nothing(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path / "pvc")
    with pytest.raises(PhysicalBackupFailed, match="exited with 3"):
        failing = ["sh", "-c", "head -c 3000000 /dev/urandom; echo bad >&2; exit 3"]
        _stream(storage, data_key("b1", TAR), failing, compress_command(TOOLS, ZSTD, 1), "tar", ())
    assert storage.list() == [] and list((tmp_path / "pvc").rglob("*.partial")) == []


def test_a_failing_compressor_stores_nothing(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path / "pvc")
    with pytest.raises(PhysicalBackupFailed, match="compressing"):
        _stream(storage, data_key("b1", TAR), ["head", "-c", "3000000", "/dev/zero"],
                ["sh", "-c", "head -c 10 >/dev/null; exit 4"], "tar", ())
    assert storage.list() == []


@pytest.mark.parametrize("compression", [ZSTD, NO_COMPRESSION])
def test_corrupt_data_is_refused_as_corrupt(tmp_path: Path, compression: str) -> None:
    source = tmp_path / "source"
    make_datadir(source)
    storage = DirectoryStorage(tmp_path / "pvc")
    manifest = store_tree(source, storage, compression)
    path = tmp_path / "pvc" / manifest.dump_key
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # the tools may or may not notice; the sha256 always does
    path.write_bytes(bytes(data))
    with pytest.raises(BackupCorrupt):
        unpack_physical(storage, manifest, tmp_path / "datadir")


def test_unpack_needs_an_empty_data_directory_and_a_physical_backup(tmp_path: Path) -> None:
    source = tmp_path / "source"
    make_datadir(source)
    storage = DirectoryStorage(tmp_path / "pvc")
    manifest = store_tree(source, storage, ZSTD)
    (tmp_path / "datadir").mkdir()
    (tmp_path / "datadir" / "ibdata1").write_bytes(b"old")
    with pytest.raises(PhysicalRestoreFailed, match="not empty"):
        unpack_physical(storage, manifest, tmp_path / "datadir")
    with pytest.raises(PhysicalRestoreFailed, match="not a physical backup"):
        unpack_physical(storage, manifest.model_copy(update={"method": "logical"}), tmp_path / "other")


def test_mariadb_backup_must_be_of_the_server_s_release_series(tmp_path: Path) -> None:
    debian = "mariadb-backup based on MariaDB server 10.11.19-MariaDB debian-linux-gnu (x86_64)\n"
    assert tool_series_mismatch(debian, "10.11.6-MariaDB-log") == ""  # another patch level: fine
    why = tool_series_mismatch(debian, "11.4.5-MariaDB-ubu2404")
    assert "10.11 cannot copy a MariaDB 11.4 server" in why and "logical" in why
    assert tool_series_mismatch("something else", "11.4.5-MariaDB") == ""  # unreadable: no verdict
    # the version is read from the tool itself; a tool that cannot say gives no verdict either
    tool = tmp_path / "mariadb-backup"
    tool.write_text("#!/bin/sh\necho 'mariadb-backup based on MariaDB server 11.4.5-MariaDB (x86_64)'\n")
    tool.chmod(0o755)
    assert "11.4" in _tool_version(str(tool))
    assert _tool_version(str(tmp_path / "missing")) == ""
    # a restore refuses before writing anything: the tool would prepare a copy it cannot read
    source = tmp_path / "source"
    make_datadir(source)
    storage = DirectoryStorage(tmp_path / "pvc")
    manifest = store_tree(source, storage, ZSTD).model_copy(
        update={"archive": MBSTREAM, "server_version": "10.6.20-MariaDB"})
    with pytest.raises(PhysicalRestoreFailed, match=r"11\.4 cannot copy a MariaDB 10\.6 server"):
        unpack_physical(storage, manifest, tmp_path / "datadir", tools=PhysicalTools(backup=str(tool)))
    assert not (tmp_path / "datadir").exists()
