"""Finding dataset files on disk, verifying them, and downloading them when online.

Lookup order: the ``--data-dir`` argument, then ``$CREDITLAB_DATA``, then ``~/.cache/creditlab``.
Inside a root, a dataset's files live in ``<root>/<folder>/`` (``mnist``, ``fashion-mnist``,
``kmnist``, ``cifar-10``), gzipped or not. Every file is checked against its official checksum
before a byte of it is used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from creditlab.data.specs import DatasetSpec, FileSpec
from creditlab.errors import DatasetError

DATA_ENV = "CREDITLAB_DATA"
MIRROR_ENV = "CREDITLAB_MIRROR"  # a base URL tried before the official mirrors (tests, local caches)
DEFAULT_CACHE = Path("~/.cache/creditlab")


def search_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for datasets, in order."""
    roots: list[Path] = []
    if data_dir:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    roots.append(DEFAULT_CACHE.expanduser())
    return roots


def md5_of(path: Path) -> str:
    """md5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _candidates(root: Path, spec: DatasetSpec, file: FileSpec) -> list[Path]:
    folder = root / spec.folder
    names = (file.name + ".gz", file.name)
    return [folder / n for n in names] + [root / n for n in names]


def read_verified(path: Path, file: FileSpec) -> bytes:
    """Read a dataset file (gzip or plain) and return its verified decompressed content.

    A gzip file matching the official ``gz_md5`` is accepted at once; otherwise the decompressed
    content must match ``raw_md5``. Raises DatasetError naming the file on any mismatch.
    """
    is_gz = path.suffix == ".gz"
    try:
        if is_gz:
            with gzip.open(path, "rb") as handle:
                content = handle.read()
        else:
            content = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc}); delete it and let creditlab fetch it again") from exc
    if is_gz and file.gz_md5 and md5_of(path) == file.gz_md5:
        return content
    if file.raw_md5 is not None:
        actual = hashlib.md5(content).hexdigest()
        if actual != file.raw_md5:
            raise DatasetError(
                f"{path}: checksum mismatch (content md5 {actual}, official {file.raw_md5}); "
                "the file is corrupt or truncated. Delete it and fetch it again."
            )
        return content
    if is_gz and file.gz_md5:
        raise DatasetError(
            f"{path}: checksum mismatch (md5 {md5_of(path)}, official {file.gz_md5}); "
            "the file is corrupt or truncated. Delete it and fetch it again."
        )
    return content  # no published checksum for this form: the format reader checks structure


def locate(spec: DatasetSpec, file: FileSpec, roots: list[Path]) -> Path | None:
    """The first existing copy of ``file`` under ``roots``, or None."""
    for root in roots:
        for candidate in _candidates(root, spec, file):
            if candidate.is_file():
                return candidate
    return None


def _mirrors(spec: DatasetSpec) -> list[str]:
    mirrors = list(spec.mirrors)
    if os.environ.get(MIRROR_ENV):
        base = os.environ[MIRROR_ENV].rstrip("/") + "/"
        mirrors.insert(0, base + spec.folder + "/")
    return mirrors


def _fetch(url: str, destination: Path, timeout: float = 30.0) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http/https/file)
                shutil.copyfileobj(response, tmp)
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, destination)


def download(spec: DatasetSpec, cache_root: Path) -> list[str]:
    """Download ``spec``'s files into ``cache_root/<folder>``, verifying each; returns errors seen.

    Files are verified before they are moved into place, so a failed or partial download never
    leaves a file that looks usable.
    """
    errors: list[str] = []
    folder = cache_root / spec.folder
    for base in _mirrors(spec):
        try:
            if spec.archive is not None:
                _download_archive(spec, base, folder)
            else:
                for file in spec.train_files + spec.test_files:
                    target = folder / (file.name + ".gz")
                    if target.is_file():
                        continue
                    staging = folder / (".partial-" + file.name + ".gz")
                    _fetch(base + file.name + ".gz", staging)
                    try:
                        read_verified(staging, file)
                    except DatasetError:
                        staging.unlink(missing_ok=True)
                        raise
                    os.replace(staging, target)
            return []
        except (urllib.error.URLError, OSError, DatasetError, tarfile.TarError) as exc:
            errors.append(f"{base}: {exc}")
    return errors


def _download_archive(spec: DatasetSpec, base: str, folder: Path) -> None:
    assert spec.archive is not None
    name, md5 = spec.archive
    archive = folder / name
    _fetch(base + name, archive)
    if md5_of(archive) != md5:
        archive.unlink(missing_ok=True)
        raise DatasetError(f"{base + name}: checksum mismatch (official md5 {md5})")
    wanted = {f.name for f in spec.train_files + spec.test_files}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            base_name = Path(member.name).name
            if base_name in wanted and member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                with open(folder / base_name, "wb") as out:
                    shutil.copyfileobj(source, out)
    archive.unlink()


def load_files(spec: DatasetSpec, data_dir: str | os.PathLike | None, allow_download: bool = True
               ) -> dict[str, tuple[Path, bytes]]:
    """Verified content of every file of ``spec``: ``{file name: (path, bytes)}``.

    Looks in every search root; downloads into the cache when a file is missing and
    ``allow_download``; otherwise raises DatasetError saying where it looked and how to fix it.
    """
    roots = search_roots(data_dir)
    files = spec.train_files + spec.test_files
    missing = [f for f in files if locate(spec, f, roots) is None]
    download_errors: list[str] = []
    if missing and allow_download:
        cache = DEFAULT_CACHE.expanduser()
        download_errors = download(spec, cache)
        missing = [f for f in files if locate(spec, f, roots) is None]
    if missing:
        searched = "\n  ".join(str(r / spec.folder) for r in roots)
        why = ("\nDownload failed:\n  " + "\n  ".join(download_errors)) if download_errors else ""
        raise DatasetError(
            f"dataset {spec.name!r}: missing {', '.join(f.name for f in missing)} (gzipped or not).\n"
            f"Searched:\n  {searched}{why}\n"
            f"Fix: pass --data-dir DIR or set {DATA_ENV}=DIR where DIR/{spec.folder}/ holds the official "
            "files, or run once with internet access to download them (verified by checksum)."
        )
    result: dict[str, tuple[Path, bytes]] = {}
    for file in files:
        path = locate(spec, file, roots)
        assert path is not None
        result[file.name] = (path, read_verified(path, file))
    return result
