"""The one file-system layer: every path a user gives may be local, gs:// or ram://.

A Cloud TPU reads and writes only through TensorFlow's file systems, so the data dir, the
model dir, the vocab, the tfrecords and every result may live in a bucket. Everything here
goes through tf.io.gfile, which serves local paths too (reads and existence checks of plain
local paths use os, see _plain_local); nothing may call open(), os.makedirs or shutil on a
path with a scheme (a local folder named `gs:` would appear).

`ram://` (TensorFlow's in-memory file system) stands in for a bucket in the tests. What the
file systems guarantee differs, and the callers rely only on the common part:
  - local disk: rename is atomic (POSIX), directories are real.
  - gs://: an object appears atomically when complete (a reader sees the old object or the
    whole new one, never a half-written one); there are no real directories (a "directory"
    is a name prefix) and rename is a server-side copy then a delete, per object.
  - ram://: a flat map of names; renaming a file is atomic, renaming a directory does not move
    its files. Directory renames are therefore never used on a non-local file system.
    Its exists/isdir also answer yes for any name that merely begins another file's name
    ("model.ckpt-3" begins "model.ckpt-3.index"): exists/isdir below correct that, and
    tf_checkpoint_path works around TensorFlow's own checkpoint readers tripping over it.
"""

import builtins
import hashlib
import os
import posixpath



_CHUNK = 16 * 2 ** 20


def _gfile():
    """tf.io.gfile, imported on first use (util.io's formatting helpers stay TF-free)."""
    from util.quiet_tf import import_tensorflow
    return import_tensorflow().io.gfile


def errors():
    """The exceptions a file-system call may raise: OSError, or TensorFlow's OpError."""
    from util.quiet_tf import import_tensorflow  # (the first import may be this one)
    return (OSError, import_tensorflow().errors.OpError)


def error_text(e):
    """The short reason in a file-system exception (TF's .message, OSError's strerror)."""
    return getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)


def scheme(path):
    """'gs://b/x' -> 'gs'; '/tmp/x' or 'x' -> ''."""
    path = os.fspath(path)
    return path.split("://", 1)[0] if "://" in path else ""


def is_local(path):
    """True for a path on the local disk (no scheme, or file://)."""
    return scheme(path) in ("", "file")


def join(*parts):
    return os.path.join(*[os.fspath(p) for p in parts])


def dirname(path):
    """The parent of path; for a bucket's top ('gs://b/x' -> 'gs://b') never 'gs:'."""
    path = os.fspath(path).rstrip("/") or "/"
    if is_local(path) and not path.startswith("file://"):
        return os.path.dirname(os.path.abspath(path))
    prefix, _, rest = path.partition("://")
    parent = posixpath.dirname(rest)
    return "%s://%s" % (prefix, parent) if parent else path


def basename(path):
    return posixpath.basename(os.fspath(path).rstrip("/"))


def abspath(path):
    """Local paths made absolute (so a cwd change cannot move them); others unchanged."""
    path = os.fspath(path)
    return os.path.abspath(path) if is_local(path) and "://" not in path else path


# Reads and existence checks of plain local paths use os directly: the corpus builder's job
# processes are TensorFlow-free by design (importing TF there doubles a small build's time),
# and they read the vocab through model.tokenization. Same answers as gfile on a local disk.
def _plain_local(path):
    return "://" not in path


def exists(path):
    path = os.fspath(path)
    if _plain_local(path):
        return os.path.exists(path)
    return _gfile().exists(path) and (scheme(path) != "ram" or _ram_really_exists(path))


def isdir(path):
    path = os.fspath(path)
    if _plain_local(path):
        return os.path.isdir(path)
    return _gfile().isdir(path) and (scheme(path) != "ram" or _ram_really_exists(path))


def _ram_really_exists(path):
    """ram:// only: path is listed in its parent or has children of its own (not just a
    name that begins another file's name, which ram:// also calls existing)."""
    path = path.rstrip("/")
    try:
        if basename(path) in _gfile().listdir(dirname(path)):
            return True
    except errors():
        pass
    return bool(_gfile().glob(path + "/*"))


def tf_checkpoint_path(prefix):
    """The argument for TensorFlow's checkpoint readers (tf.train.list_variables,
    load_checkpoint, init_from_checkpoint) that names the checkpoint `prefix`.

    Those readers first ask gfile.isdir(prefix) and, if yes, read the newest checkpoint
    in that "directory". A prefix is never a directory on a local disk or gs://, but ram://
    says it is (see the module doc), so there the prefix's directory is passed when the
    prefix is its newest checkpoint (the usual case); another ram:// prefix is refused.
    """
    prefix = os.fspath(prefix)
    if scheme(prefix) != "ram" or not _gfile().isdir(prefix):
        return prefix
    from util.quiet_tf import import_tensorflow
    from util.errors import InputError
    tf = import_tensorflow()
    directory = dirname(prefix)
    if tf.train.latest_checkpoint(directory) == prefix:
        return directory
    raise InputError("checkpoint %s: on ram:// only the newest checkpoint of a directory "
                     "can be read (TensorFlow's in-memory file system takes the prefix for "
                     "a directory); use %s" % (prefix, tf.train.latest_checkpoint(directory)))


def isfile(path):
    return exists(path) and not isdir(path)


def file_in_the_way(path):
    """The nearest ancestor of path that is a file (so path cannot be a directory), or None."""
    path = os.fspath(path)
    while True:
        parent = dirname(path)
        if parent == path:
            return None
        try:
            if not _gfile().stat(parent).is_directory:
                return parent
        except errors():
            pass
        path = parent


def stat(path):
    """gfile's FileStatistics: .length (bytes), .mtime_nsec, .is_directory."""
    return _gfile().stat(os.fspath(path))


def getsize(path):
    return stat(path).length


def makedirs(path):
    """Creates path and its parents; no error if it exists."""
    _gfile().makedirs(os.fspath(path))


def glob(pattern):
    """The sorted matches of a shell pattern (no '**' recursion: buckets do not have it)."""
    return sorted(_gfile().glob(os.fspath(pattern)))


def listdir(path):
    """Sorted entry names of a directory (GCS lists sub-"directories" with a '/': stripped)."""
    return sorted(name.rstrip("/") for name in _gfile().listdir(os.fspath(path)))


def walk_files(top):
    """Every file below top, as full paths, sorted."""
    found = []
    for directory, _, files in _gfile().walk(os.fspath(top)):
        found.extend(join(directory, name) for name in files)
    return sorted(found)


def open(path, mode="r"):  # noqa: A001 (the file-system version of the builtin)
    """A gfile.GFile; mode 'r'/'w'/'a' text (UTF-8) or 'rb'/'wb'/'ab' bytes."""
    return _gfile().GFile(os.fspath(path), mode)


def read_bytes(path):
    path = os.fspath(path)
    if _plain_local(path):
        with builtins.open(path, "rb") as f:
            return f.read()
    with _gfile().GFile(path, "rb") as f:
        return f.read()


def read_text(path, encoding="utf-8", errors="strict"):
    """The whole file decoded; encoding 'utf-8-sig' drops a leading BOM. Newlines kept as is."""
    return read_bytes(path).decode(encoding, errors)


def write_bytes(path, data):
    """Writes data to path (not atomic on a local disk: use util.io.atomic_write for that)."""
    with _gfile().GFile(os.fspath(path), "wb") as f:
        f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def append_text(path, text):
    """Appends to path, creating it. On gs:// an append rewrites the object (fine for logs)."""
    with _gfile().GFile(os.fspath(path), "a") as f:
        f.write(text)


def copy(src, dst, overwrite=False):
    """Copies one file, across file systems too (local -> gs://, ram:// -> local, ...)."""
    _gfile().copy(os.fspath(src), os.fspath(dst), overwrite=overwrite)


def rename(src, dst, overwrite=False):
    """Renames a file (or, on a local disk only, a directory): atomic on a local disk and
    ram://; a copy then a delete on gs://."""
    _gfile().rename(os.fspath(src), os.fspath(dst), overwrite=overwrite)


def remove(path, missing_ok=False):
    if missing_ok and not exists(path):
        return
    _gfile().remove(os.fspath(path))


def rmtree(path, missing_ok=True):
    """Deletes a directory and everything below it."""
    if missing_ok and not exists(path):
        return
    _gfile().rmtree(os.fspath(path))


def same_bytes(a, b):
    """True if the two files hold the same bytes (filecmp for any file system)."""
    if getsize(a) != getsize(b):
        return False
    with _gfile().GFile(os.fspath(a), "rb") as fa, _gfile().GFile(os.fspath(b), "rb") as fb:
        while True:
            chunk = fa.read(_CHUNK)
            if chunk != fb.read(_CHUNK):
                return False
            if not chunk:
                return True


def digest(path, sample_bytes=None):
    """SHA-256 (hex) of a file's content. With sample_bytes, a file longer than twice that is
    hashed by its length, first and last sample_bytes only: a cheap identity for tfrecords
    of many gigabytes (in a bucket) whose rebuild changes their shuffled first records."""
    sha = hashlib.sha256()
    size = getsize(path)
    with _gfile().GFile(os.fspath(path), "rb") as f:
        if sample_bytes is None or size <= 2 * sample_bytes:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                sha.update(chunk)
        else:
            sha.update(b"%d:" % size)
            sha.update(f.read(sample_bytes))
            f.seek(size - sample_bytes)
            sha.update(f.read(sample_bytes))
    return sha.hexdigest()


def copy_tree(src, dst):
    """Copies every file below src to the same relative path below dst (dst created)."""
    src = os.fspath(src).rstrip("/")
    for path in walk_files(src):
        target = join(dst, os.path.relpath(path, src) if is_local(src) else path[len(src) + 1:])
        makedirs(dirname(target))
        copy(path, target, overwrite=True)
