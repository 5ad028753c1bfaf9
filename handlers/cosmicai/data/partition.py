"""Re-shard any readable input into shards of about M MiB with a manifest; local or S3 output.

Objects come from a `ShardSource`: shard-like files (`FileSource`, what `partition` reads)
or FITS cutouts plus an object table (`cosmicai.data.fits.FitsSource`). A source may leave
objects out with a reason (`rejected`, listed in the manifest); one writer serves all.

Output shards are `part-NNNNN.safetensors` (the shard format) in input order; the same
input and target always give byte-identical shards, so re-running only uploads what
changed (compared by sha256, kept in the S3 object metadata) and removes stale
`part-*` shards a previous, different partitioning left behind.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from cosmicai.shards import BANDS, CROP, Shard, concat_shards, read_shard, shard_to_bytes

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client

MIB = 1 << 20
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "cosmicai.manifest"
PART_RE = re.compile(r"^part-\d{5,}\.safetensors$")
HEADER_ALLOWANCE = 512  # safetensors JSON header of a shard, bytes
INPUT_SUFFIXES = (".safetensors", ".npz", ".pt", ".pth")


class PartitionError(ValueError):
    """Partition input or target is unusable (named source and reason).

    `rejected` lists the objects a source left out (with reasons) when that is why
    nothing could be written."""

    def __init__(self, message: str, rejected: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.rejected = rejected or []


class ShardSource(Protocol):
    """Where partition's objects come from."""

    # True: a switch between labelled and unlabelled objects starts a new shard (a source
    # that orders them so); False: such a switch is an input error.
    split_on_labels: bool

    def describe(self) -> list[str]:
        """The inputs, for the manifest's `sources`."""
        ...

    def input_bytes(self) -> int:
        """Bytes of input, for the progress bar."""
        ...

    def shards(self) -> Iterator[tuple[str, Shard]]:
        """(label for messages, validated shard) in output order."""
        ...

    def rejected(self) -> list[dict[str, Any]] | None:
        """Objects left out, as {id, file, code, reason}; None for a source that never skips any."""
        ...


@dataclass
class PartitionResult:
    """Summary of one partition run."""

    target: str
    shards: list[dict[str, Any]] = field(default_factory=list)
    objects: int = 0
    bytes: int = 0
    uploaded: int = 0
    skipped: int = 0
    removed: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] | None = None  # None: the source never skips objects

    def as_dict(self) -> dict[str, Any]:
        out = {
            "target": self.target,
            "shards": len(self.shards),
            "objects": self.objects,
            "bytes": self.bytes,
            "written": self.uploaded,
            "unchanged": self.skipped,
            "removed": self.removed,
        }
        if self.rejected is not None:
            out["rejected"] = self.rejected
        return out


def object_bytes(has_redshift: bool, has_position: bool = False) -> int:
    """Bytes one object takes in a shard: 5x32x32 float32 image, 5 float32 mags, int64 id,
    float32 z, float64 ra and dec."""
    return BANDS * CROP * CROP * 4 + BANDS * 4 + 8 + (4 if has_redshift else 0) + (16 if has_position else 0)


def objects_per_shard(target_mb: float, has_redshift: bool, has_position: bool = False) -> int:
    """Objects that fill target_mb MiB (the reference's 100 MB partition is 100 MiB)."""
    if not target_mb > 0:
        raise PartitionError(f"--target-mb must be positive, got {target_mb}")
    return max(1, int((target_mb * MIB - HEADER_ALLOWANCE) // object_bytes(has_redshift, has_position)))


def expand_sources(sources: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders expand to their shard-like files (sorted, non-recursive)."""
    out: list[Path] = []
    for src in map(Path, sources):
        if src.is_dir():
            found = sorted(p for p in src.iterdir() if p.is_file() and p.suffix in INPUT_SUFFIXES)
            if not found:
                raise PartitionError(f"{src}: folder holds no {'/'.join(INPUT_SUFFIXES)} files")
            out += found
        elif src.is_file():
            out.append(src)
        else:
            raise PartitionError(f"{src}: no such file or folder")
    return out


def iter_sources(files: Sequence[Path], renumber: bool) -> Iterator[tuple[str, Shard]]:
    """Read each source (validated, cropped to 32x32); optionally give ids 0..N-1 in input order."""
    offset = 0
    for f in files:
        shard = read_shard(f)
        if renumber:
            shard = replace(shard, object_ids=np.arange(offset, offset + shard.n, dtype=np.int64))
        offset += shard.n
        yield str(f), shard


@dataclass
class FileSource:
    """Shard-like files (safetensors, npz, reference .pt), read whole and in order."""

    files: list[Path]
    renumber: bool = False
    split_on_labels: bool = False

    def describe(self) -> list[str]:
        return [str(p) for p in self.files]

    def input_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def shards(self) -> Iterator[tuple[str, Shard]]:
        return iter_sources(self.files, self.renumber)

    def rejected(self) -> list[dict[str, Any]] | None:
        return None


def iter_output_shards(
    items: Iterable[tuple[str, Shard]], per_shard: int | None, target_mb: float, *, split_on_labels: bool = False
) -> Iterator[Shard]:
    """Concatenate the sources' shards and cut them into shards of per_shard objects (from
    target_mb when None). A shard holds only labelled or only unlabelled objects, and only
    objects with or only without sky positions."""
    seen: dict[int, str] = {}
    kind: tuple[bool, bool] | None = None  # (has redshift, has position) of the buffered objects
    size = per_shard
    buf: list[Shard] = []
    buffered = 0
    for label, shard in items:
        now = (shard.has_redshift, shard.has_position)
        if kind is not None and now != kind:
            if not (split_on_labels and now[1] == kind[1]):
                raise PartitionError(
                    f"{label}: {_unlike(now, kind)} unlike the sources before it; partition them separately"
                )
            if buffered:  # the source switched from labelled to unlabelled objects: close the shard
                yield _take(buf, buffered)[0]
                buf, buffered = [], 0
            kind = None
        if kind is None:
            kind = now
            size = per_shard or objects_per_shard(target_mb, *now)
        assert size is not None
        _check_unique(shard.object_ids, label, seen)
        buf.append(shard)
        buffered += shard.n
        while buffered >= size:
            out, buf = _take(buf, size)
            buffered -= size
            yield out
    if buffered:
        yield _take(buf, buffered)[0]


def _unlike(now: tuple[bool, bool], before: tuple[bool, bool]) -> str:
    if now[0] != before[0]:
        return f"{'has' if now[0] else 'lacks'} redshift"
    return f"{'has' if now[1] else 'lacks'} sky positions (ra/dec)"


def _check_unique(ids: np.ndarray, source: str, seen: dict[int, str]) -> None:
    dup = [int(i) for i in ids if int(i) in seen]
    if dup:
        raise PartitionError(
            f"{source}: object id {dup[0]} already came from {seen[dup[0]]} ({len(dup)} duplicate ids); "
            "reference .pt partitions number objects by row, so pass --renumber to give every object a new id"
        )
    seen.update((int(i), source) for i in ids)


def _take(buf: list[Shard], n: int) -> tuple[Shard, list[Shard]]:
    """First n objects of the buffered shards (all alike in their optional arrays), and the rest."""
    whole = concat_shards(buf)
    head = whole.rows(slice(None, n))
    rest = [] if head.n == whole.n else [whole.rows(slice(n, None))]
    return head, rest


def canonical_safetensors(data: bytes) -> bytes:
    """Same file with its JSON header key-sorted, so equal content gives equal bytes and sha256.

    safetensors writes metadata in hash-map order, which differs between runs.
    """
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + hlen])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned, as safetensors does
    return struct.pack("<Q", len(text)) + text + data[8 + hlen :]


def manifest_doc(
    entries: list[dict[str, Any]],
    target_mb: float,
    sources: Sequence[str | Path],
    rejected: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The manifest.json document (docs/CONTRACTS.md, 'Partition manifest')."""
    doc = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "target_mb": target_mb,
        "objects": sum(e["count"] for e in entries),
        "sources": [str(p) for p in sources],
        "shards": entries,
    }
    if rejected is not None:  # only sources that may skip objects list them (FITS)
        doc["rejected"] = rejected
    return doc


# ---------------------------------------------------------------- sinks


class LocalSink:
    """Writes shards into a folder; skips files whose bytes already match."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.label = str(self.out)

    def put(self, key: str, data: bytes, sha: str) -> bool:
        path = self.out / key
        if path.is_file() and path.stat().st_size == len(data) and _sha_file(path) == sha:
            return False
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return True

    def existing_parts(self) -> list[str]:
        return sorted(p.name for p in self.out.iterdir() if PART_RE.match(p.name))

    def delete(self, key: str) -> None:
        (self.out / key).unlink()

    def close(self) -> None:
        pass


class S3Sink:
    """Uploads shards with parallel multipart transfers; skips keys whose sha256 metadata matches."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        jobs: int = 4,
        s3: S3Client | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        from boto3.s3.transfer import TransferConfig

        from cosmicai.runstore import s3_client

        self.bucket, self.prefix = bucket, prefix
        self.s3: S3Client = s3 or s3_client()
        self.label = f"s3://{bucket}/{prefix}"
        self.config = TransferConfig(
            multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=4, use_threads=True
        )
        self.pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        self.pending: list[Future[bool]] = []
        self.on_bytes = on_bytes
        self.tmp = tempfile.TemporaryDirectory(prefix="cosmicai-partition-")
        self._check_bucket()

    def _check_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise PartitionError(
                f"{self.label}: bucket not reachable ({code}); deploy first or check AWS_ENDPOINT_URL/credentials"
            ) from exc

    def _remote_sha(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head.get("Metadata", {}).get("sha256")

    def put(self, key: str, data: bytes, sha: str) -> Future[bool]:
        # Stage on disk so memory holds one shard at a time while uploads run in parallel.
        path = Path(self.tmp.name) / key
        path.write_bytes(data)
        fut = self.pool.submit(self._upload, key, path, sha)
        self.pending.append(fut)
        return fut

    def _upload(self, key: str, path: Path, sha: str) -> bool:
        try:
            if self._remote_sha(key) == sha:
                if self.on_bytes:
                    self.on_bytes(path.stat().st_size)
                return False
            self.s3.upload_file(
                str(path),
                self.bucket,
                self.prefix + key,
                Config=self.config,
                ExtraArgs={"Metadata": {"sha256": sha}, "ContentType": "application/octet-stream"},
                Callback=self.on_bytes,
            )
            return True
        finally:
            path.unlink(missing_ok=True)

    def existing_parts(self) -> list[str]:
        from cosmicai.runstore import list_objects

        keys = [o["Key"] if isinstance(o, dict) else o for o in list_objects(self.s3, self.bucket, self.prefix)]
        rel = [k[len(self.prefix) :] for k in keys]
        return sorted(k for k in rel if PART_RE.match(k))

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def put_manifest(self, data: bytes) -> None:
        self.s3.put_object(
            Bucket=self.bucket, Key=self.prefix + MANIFEST_NAME, Body=data, ContentType="application/json"
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.tmp.cleanup()


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_target(out: str) -> tuple[str, str] | Path:
    """(bucket, prefix ending in '/') for s3://bucket/prefix, else a local folder."""
    if out.startswith("s3://"):
        rest = out[5:]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise PartitionError(f"--out {out}: no bucket name")
        return bucket, (prefix.rstrip("/") + "/") if prefix.strip("/") else ""
    return Path(out)


def partition(
    sources: Sequence[str | Path],
    out: str,
    target_mb: float = 100.0,
    *,
    per_shard: int | None = None,
    renumber: bool = False,
    jobs: int = 4,
    prune: bool = True,
    progress: bool = True,
    s3: S3Client | None = None,
) -> PartitionResult:
    """Re-shard sources into `out` (folder or s3://bucket/prefix) and write manifest.json there."""
    source = FileSource(expand_sources(sources), renumber)
    return write_partition(
        source, out, target_mb, per_shard=per_shard, jobs=jobs, prune=prune, progress=progress, s3=s3
    )


def write_partition(
    source: ShardSource,
    out: str,
    target_mb: float = 100.0,
    *,
    per_shard: int | None = None,
    jobs: int = 4,
    prune: bool = True,
    progress: bool = True,
    s3: S3Client | None = None,
) -> PartitionResult:
    """Cut the source's objects into shards in `out` (folder or s3://bucket/prefix) with manifest.json."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    objects_per_shard(target_mb, True)  # validates target_mb early
    target = parse_target(out)
    total_in = source.input_bytes()  # reads a FITS source's table: its errors come before any output
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    )
    result = PartitionResult(target=out)
    with bar:
        read_task = bar.add_task("re-shard", total=total_in)
        up_task = bar.add_task("upload" if not isinstance(target, Path) else "write", total=None)
        sink: LocalSink | S3Sink
        if isinstance(target, Path):
            sink = LocalSink(target)
        else:
            sink = S3Sink(*target, jobs=jobs, s3=s3, on_bytes=lambda n: bar.advance(up_task, n))
        try:
            futures: list[tuple[dict[str, Any], Any]] = []
            staged = 0
            shards = iter_output_shards(source.shards(), per_shard, target_mb, split_on_labels=source.split_on_labels)
            for i, shard in enumerate(shards):
                key = f"part-{i:05d}.safetensors"
                data = canonical_safetensors(shard_to_bytes(shard, key))
                sha = hashlib.sha256(data).hexdigest()
                entry = {"key": key, "count": shard.n, "bytes": len(data), "sha256": sha}
                result.shards.append(entry)
                result.objects += shard.n
                result.bytes += len(data)
                staged += len(data)
                bar.update(up_task, total=staged)
                bar.update(
                    read_task,
                    completed=min(total_in, total_in * result.objects / max(1, _estimate_objects(total_in, result))),
                )
                futures.append((entry, sink.put(key, data, sha)))
                if isinstance(sink, LocalSink):
                    bar.advance(up_task, len(data))
            result.rejected = source.rejected()
            if not result.shards:
                why = f"; all {len(result.rejected)} rejected" if result.rejected else ""
                raise PartitionError(f"no usable objects in {source.describe()}{why}", result.rejected)
            bar.update(read_task, completed=total_in)
            for _entry, done in futures:
                changed = done.result() if isinstance(done, Future) else done
                result.uploaded += int(changed)
                result.skipped += int(not changed)
            new = {e["key"] for e in result.shards}
            if prune:
                for key in sink.existing_parts():
                    if key not in new:
                        sink.delete(key)
                        result.removed.append(key)
            doc = json.dumps(
                manifest_doc(result.shards, target_mb, source.describe(), result.rejected), indent=1
            ).encode()
            if isinstance(sink, S3Sink):
                sink.put_manifest(doc)
            else:
                sink.put(MANIFEST_NAME, doc, hashlib.sha256(doc).hexdigest())
        finally:
            sink.close()
    return result


def _estimate_objects(total_in: int, result: PartitionResult) -> float:
    """Rough object total for the progress bar: input bytes / bytes per object so far."""
    per = result.bytes / max(1, result.objects)
    return total_in / per
