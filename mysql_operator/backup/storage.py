"""Where backups live, behind one small interface: a directory (a mounted PVC) or an S3 bucket.

Keys are `/`-separated paths relative to the storage's root. `put` is all-or-nothing: the object
appears only once its stream was read to the end without an error (a temporary file renamed into
place; an S3 multipart upload completed only at the end), so a writer that dies leaves nothing a
reader would mistake for a finished object.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK_SIZE = 1 << 20
# S3 parts: at least 5 MiB each (but the last), at most 10,000 of them: 16 MiB parts allow 156 GiB.
S3_PART_SIZE = 16 << 20
S3_MAX_PARTS = 10_000
_KEY = re.compile(r"^[A-Za-z0-9!_.*'()=+-]+(/[A-Za-z0-9!_.*'()=+-]+)*$")
PARTIAL_SUFFIX = ".partial"


class Readable(Protocol):
    """Anything with a `read(size)` that returns b"" at the end: a file, a pipe, a DumpStream."""

    def read(self, size: int = -1, /) -> bytes: ...


class StorageError(Exception):
    """The storage could not be read or written."""


class ObjectMissing(StorageError):
    """No object under that key."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime | None = None


def check_key(key: str) -> str:
    """Refuse keys that could escape the storage root or that S3 and a filesystem treat differently."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise StorageError(f"invalid storage key: {key!r}")
    return key


def read_exactly(source: Readable, size: int) -> bytes:
    """Up to `size` bytes; fewer only at the end of the stream."""
    chunks: list[bytes] = []
    wanted = size
    while wanted > 0:
        chunk = source.read(wanted)
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


class Storage(ABC):
    """Put, get, list, delete objects by key."""

    @abstractmethod
    def put(self, key: str, source: Readable) -> int:
        """Store everything `source` yields under `key` (replacing it); returns the bytes stored.

        If reading `source` raises, nothing is stored and the error propagates.
        """

    @abstractmethod
    def open(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A readable stream of the object; raises ObjectMissing."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredObject]:
        """Complete objects whose key starts with `prefix`, sorted by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; no error if it is already gone."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Size of an object, or None when there is none."""

    def put_bytes(self, key: str, data: bytes) -> int:
        import io

        return self.put(key, io.BytesIO(data))

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    @abstractmethod
    def describe(self) -> str:
        """Where this storage is, for messages (no credentials)."""


class DirectoryStorage(Storage):
    """Objects as files under a directory (a mounted PVC)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"directory {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, source: Readable) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
        written = 0
        try:
            with open(temporary, "wb") as out:
                while chunk := source.read(CHUNK_SIZE):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
            _fsync_directory(target.parent)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return written

    @contextlib.contextmanager
    def _reader(self, key: str) -> Iterator[IO[bytes]]:
        try:
            stream = open(self._path(key), "rb")  # noqa: SIM115 - closed by the context manager
        except FileNotFoundError:
            raise ObjectMissing(f"{key} not found in {self.describe()}") from None
        with stream:
            yield stream

    def open(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self._reader(key)

    def list(self, prefix: str = "") -> list[StoredObject]:
        if not self.root.exists():
            return []
        found = []
        for path in self.root.rglob("*"):
            if not path.is_file() or path.name.endswith(PARTIAL_SUFFIX):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                found.append(_file_object(key, path))
        return sorted(found, key=lambda o: o.key)

    def list_partial(self, prefix: str = "") -> builtins.list[StoredObject]:
        """Temporary files of writers that died; retention removes them."""
        if not self.root.exists():
            return []
        return sorted(
            (
                _file_object(p.relative_to(self.root).as_posix(), p)
                for p in self.root.rglob(f"*{PARTIAL_SUFFIX}")
                if p.relative_to(self.root).as_posix().startswith(prefix)
            ),
            key=lambda o: o.key,
        )

    def delete(self, key: str) -> None:
        path = self.root / key  # keys of partial files are not valid object keys: no check_key
        if ".." in Path(key).parts:
            raise StorageError(f"invalid storage key: {key!r}")
        path.unlink(missing_ok=True)
        # drop directories left empty, up to the root
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None


def _file_object(key: str, path: Path) -> StoredObject:
    status = path.stat()
    return StoredObject(key, status.st_size, datetime.fromtimestamp(status.st_mtime, UTC))


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass
class S3Location:
    endpoint: str
    bucket: str
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    force_path_style: bool = True


class S3Storage(Storage):
    """Objects in an S3-compatible bucket under a prefix; uploads stream in 16 MiB parts."""

    def __init__(self, location: S3Location, client: S3Client | None = None) -> None:
        self.location = location
        self.prefix = location.prefix.strip("/")
        self._client = client or _make_client(location)

    def describe(self) -> str:
        where = f"{self.location.bucket}/{self.prefix}" if self.prefix else self.location.bucket
        return f"s3://{where} at {self.location.endpoint}"

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return _s3_errors(f"{what} in {self.describe()}")

    def put(self, key: str, source: Readable) -> int:
        full = self._key(key)
        bucket = self.location.bucket
        first = read_exactly(source, S3_PART_SIZE)
        if len(first) < S3_PART_SIZE:
            # small objects go in one request
            with self._errors(f"uploading {key}"):
                self._client.put_object(Bucket=bucket, Key=full, Body=first)
            return len(first)
        with self._errors(f"starting upload of {key}"):
            upload_id = self._client.create_multipart_upload(Bucket=bucket, Key=full)["UploadId"]
        parts: list[dict[str, Any]] = []
        written = 0
        try:
            chunk = first
            while chunk:
                number = len(parts) + 1
                if number > S3_MAX_PARTS:
                    raise StorageError(f"{key}: larger than {S3_MAX_PARTS} parts of {S3_PART_SIZE} bytes")
                with self._errors(f"uploading part {number} of {key}"):
                    answer = self._client.upload_part(
                        Bucket=bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                written += len(chunk)
                chunk = read_exactly(source, S3_PART_SIZE)
            with self._errors(f"completing upload of {key}"):
                self._client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
        except BaseException:
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
            raise
        return written

    @contextlib.contextmanager
    def _reader(self, key: str) -> Iterator[IO[bytes]]:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.get_object(Bucket=self.location.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectMissing(f"{key} not found in {self.describe()}") from None
            raise StorageError(f"reading {key} in {self.describe()}: {error}") from None
        body = answer["Body"]
        try:
            yield body  # type: ignore[misc]
        finally:
            body.close()

    def open(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self._reader(key)

    def list(self, prefix: str = "") -> list[StoredObject]:
        if ".." in prefix.split("/"):
            raise StorageError(f"invalid storage prefix: {prefix!r}")
        root = f"{self.prefix}/" if self.prefix else ""
        full = root + prefix
        strip = len(root)
        found = []
        with self._errors(f"listing {prefix or '/'}"):
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    modified = item.get("LastModified")
                    found.append(StoredObject(item["Key"][strip:], int(item["Size"]), modified))
        return sorted(found, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        with self._errors(f"deleting {key}"):
            self._client.delete_object(Bucket=self.location.bucket, Key=self._key(key))

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            answer = self._client.head_object(Bucket=self.location.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise StorageError(f"looking up {key} in {self.describe()}: {error}") from None
        return int(answer["ContentLength"])


@contextlib.contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise StorageError(f"{what}: {error}") from None


def _make_client(location: S3Location) -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path" if location.force_path_style else "virtual"},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
    )
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=location.endpoint,
        region_name=location.region,
        aws_access_key_id=location.access_key_id or None,
        aws_secret_access_key=location.secret_access_key or None,
        config=config,
    )
    return client
