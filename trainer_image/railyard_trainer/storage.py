"""Artifact stores addressed by URI: every file is written whole and checksummed.

Kept free of heavy imports so that the web app can read artifacts through the same code.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class StoredArtifact:
    name: str
    uri: str
    size: int
    sha256: str
    content_type: str

    def to_dict(self) -> dict:
        return asdict(self)


class ArtifactNotFound(FileNotFoundError):
    pass


class StoreError(Exception):
    """The store refused or failed a request; the message names the URI and the cause."""


class ArtifactStore(Protocol):
    """A flat namespace of named files under one URI prefix (one run's artifacts)."""

    uri: str

    def put(self, name: str, data: bytes, content_type: str) -> StoredArtifact: ...

    def get(self, name: str) -> bytes: ...

    def exists(self, name: str) -> bool: ...

    def describe(self, name: str) -> tuple[int, str | None]:
        """The stored size and, where the store keeps it, the sha256, without reading the content."""
        ...

    def open(self, name: str) -> BinaryIO: ...

    def delete(self, name: str) -> None: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileStore:
    """A directory on a local or mounted filesystem (`file:///abs/path`)."""

    def __init__(self, root: Path):
        self.root = root
        self.uri = "file://" + str(root)

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid artifact name {name!r}")
        return self.root / name

    def put(self, name: str, data: bytes, content_type: str) -> StoredArtifact:
        path = self._path(name)
        self.root.mkdir(parents=True, exist_ok=True)
        # Write under a temporary name and rename, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredArtifact(name, f"{self.uri}/{name}", len(data), sha256_hex(data), content_type)

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"{self.uri}/{name}") from exc

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def describe(self, name: str) -> tuple[int, str | None]:
        try:
            return self._path(name).stat().st_size, None
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"{self.uri}/{name}") from exc

    def open(self, name: str) -> BinaryIO:
        try:
            return self._path(name).open("rb")
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"{self.uri}/{name}") from exc

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


MULTIPART_CHUNK_BYTES = 8 * 1024 * 1024


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` → (`bucket`, `some/key`)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, key


def s3_client():  # boto3 clients have no importable type
    """An S3 client from boto3's own configuration chain (AWS_* variables, profiles, instance roles).

    `AWS_ENDPOINT_URL` points it at MinIO or another S3-compatible store. Throttling, 5xx answers
    and dropped connections are retried with backoff.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", config=Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10, read_timeout=60)
    )


def describe_s3_error(exc: Exception, uri: str) -> str:
    """What went wrong with an S3 request, in words, naming the URI."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        words = {
            "NoSuchBucket": "the bucket does not exist",
            "NoSuchKey": "no such object",
            "404": "no such object",
            "AccessDenied": "access denied",
            "403": "access denied",
            "InvalidAccessKeyId": "the access key is not valid",
            "SignatureDoesNotMatch": "the secret key does not match",
        }.get(code, f"{code or status}: {exc.response.get('Error', {}).get('Message', '')}".strip())
        return f"{uri}: {words}"
    if isinstance(exc, BotoCoreError):
        return f"{uri}: {exc}"
    return f"{uri}: {type(exc).__name__}: {exc}"


class S3Store:
    """A prefix in an S3 bucket (`s3://bucket/prefix`); each object keeps its sha256 in its metadata."""

    def __init__(self, bucket: str, prefix: str):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client()
        return self._client

    def _key(self, name: str) -> str:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid artifact name {name!r}")
        return f"{self.prefix}/{name}" if self.prefix else name

    def _fail(self, exc: Exception, name: str) -> Exception:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return ArtifactNotFound(f"{self.uri}/{name}")
        return StoreError(describe_s3_error(exc, f"{self.uri}/{name}"))

    def put(self, name: str, data: bytes, content_type: str) -> StoredArtifact:
        import io

        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        digest = sha256_hex(data)
        transfer = TransferConfig(multipart_threshold=MULTIPART_CHUNK_BYTES, multipart_chunksize=MULTIPART_CHUNK_BYTES)
        try:
            self.client.upload_fileobj(
                io.BytesIO(data),
                self.bucket,
                self._key(name),
                ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": digest}},
                Config=transfer,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, name) from exc
        return StoredArtifact(name, f"{self.uri}/{name}", len(data), digest, content_type)

    def get(self, name: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
            data = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, name) from exc
        recorded = response.get("Metadata", {}).get("sha256")
        if recorded and recorded != sha256_hex(data):
            raise StoreError(f"{self.uri}/{name}: the content does not match its recorded sha256")
        return data

    def exists(self, name: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as exc:
            error = self._fail(exc, name)
            if isinstance(error, ArtifactNotFound):
                return False
            raise error from exc
        return True

    def describe(self, name: str) -> tuple[int, str | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, name) from exc
        return head["ContentLength"], head.get("Metadata", {}).get("sha256")

    def open(self, name: str) -> BinaryIO:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, name) from exc

    def delete(self, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, name) from exc


def open_store(uri: str) -> ArtifactStore:
    """The store for a URI such as `file:///var/railyard/artifacts/runs/42` or `s3://bucket/runs/42`."""
    if uri.startswith("file://"):
        return FileStore(Path(uri.removeprefix("file://")).absolute())
    if uri.startswith("s3://"):
        return S3Store(*split_s3_uri(uri))
    scheme = uri.split("://", 1)[0] if "://" in uri else "(none)"
    raise ValueError(f"unsupported artifact store scheme {scheme!r} in {uri!r}")
