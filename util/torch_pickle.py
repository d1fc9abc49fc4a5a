"""Reads the tensors of a torch-saved state dict (`pytorch_model.bin`) into NumPy arrays,
without torch, and without running anything the file names.

A torch file is a pickle whose tensors point at raw storages kept beside it. Unpickling it
with `pickle` (or `torch.load` without weights_only) calls whatever global the file names, so
a downloaded .bin can run any code. Here the pickle goes through an unpickler that admits a
short list of globals, each mapped to a stand-in of ours that only builds arrays, and
refuses every other global (`os.system`, `builtins.eval`, ...) before anything is called.

Two layouts (torch.save):
- zip (torch >= 1.6): `<root>/data.pkl` is the pickle; storage k is the entry
  `<root>/data/<k>`; its persistent ids are ('storage', StorageType, key, location, numel).
- legacy (the 2020 Chinese ELECTRA uploads): five pickles in a row -- magic number, protocol
  version, system info, the state dict (persistent ids ('storage', StorageType, key,
  location, numel, view_metadata)), the list of storage keys -- then, per key in that order,
  an int64 element count and the storage's bytes.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

from util.errors import InputError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage types -> NumPy dtypes (bfloat16 is read as its uint16 bits; see _as_float32).
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def bfloat16_bits_to_float32(bits):
    """float32 array of bfloat16 values given as their uint16 bits (a bfloat16 is the high
    half of a float32's bits: exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


class _StandIn(object):
    """What the unpickler hands out. Pickle's BUILD (state set on an object after its
    creation) is refused: a file could otherwise change a stand-in, e.g. a storage type's
    dtype for the files read after it."""
    __slots__ = ()

    def __setstate__(self, state):
        raise ValueError("the pickle sets the state of a %s" % type(self).__name__)


class _StorageType(_StandIn):
    __slots__ = ("name", "dtype")

    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    @property
    def numpy_dtype(self):
        return np.dtype(np.uint16 if self.dtype == "bfloat16" else self.dtype)


class _Storage(_StandIn):
    """A storage's raw bytes, read on first use (read_bytes: key -> bytes)."""
    __slots__ = ("storage_type", "key", "_read_bytes", "_array")

    def __init__(self, storage_type, key, read_bytes):
        self.storage_type = storage_type
        self.key = key
        self._read_bytes = read_bytes
        self._array = None

    def array(self):
        if self._array is None:
            self._array = np.frombuffer(self._read_bytes(self.key),
                                        dtype=self.storage_type.numpy_dtype)
        return self._array


class _Tensor(_StandIn):
    """A tensor as the pickle describes it; its values are read by array() once every
    storage's bytes are at hand (a legacy file stores them after the pickle)."""
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, storage_offset, size, stride):
        if not isinstance(storage, _Storage):
            raise ValueError("a tensor rebuilt from a %s, not a storage"
                             % type(storage).__name__)
        self.storage = storage
        self.offset = int(storage_offset)
        self.size = tuple(int(n) for n in size)
        self.stride = tuple(int(s) for s in stride)
        if len(self.size) != len(self.stride) or min(self.size + self.stride + (
                self.offset,), default=0) < 0:
            raise ValueError("a tensor of size %s, stride %s at offset %d (torch writes "
                             "none with a negative or mismatched one)"
                             % (list(self.size), list(self.stride), self.offset))

    def array(self):
        """A copy of the strided view of the storage: every element inside it, and no
        more elements than it holds (a state dict has no broadcast views)."""
        base = self.storage.array()
        count = int(np.prod(self.size, dtype=np.int64)) if self.size else 1
        if count == 0:
            return np.zeros(self.size, dtype=base.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= base.size or count > base.size:
            raise ValueError("a tensor of size %s, stride %s at offset %d does not fit its "
                             "storage of %d elements" % (list(self.size), list(self.stride),
                                                         self.offset, base.size))
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size,
            strides=tuple(s * base.itemsize for s in self.stride), writeable=False)
        if self.storage.storage_type.dtype == "bfloat16":
            return bfloat16_bits_to_float32(view)
        return np.array(view)


class _Function(_StandIn):
    """An allowed global function, a new object for every reference the pickle makes."""
    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """torch._utils._rebuild_tensor(_v2)."""
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


# The only globals a state dict needs, each to a stand-in of ours that builds data and
# nothing else, made anew for each reference.
_ALLOWED = {
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,  # a type: immutable
    ("torch._utils", "_rebuild_tensor"): lambda: _Function(_rebuild_tensor),
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _Function(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): lambda: _Function(_rebuild_parameter),
}
_ALLOWED.update({("torch", name): (lambda name=name: _StorageType(name))
                 for name in STORAGE_DTYPES})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream, path, persistent_load):
        super(_RestrictedUnpickler, self).__init__(stream)
        self._path = path
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise InputError(
                "%s names the Python global %s.%s, which a weights file has no need of: "
                "refused, nothing of the file was run (only tensors, storages and "
                "OrderedDict are read). If you trust the file, convert it to "
                "model.safetensors with transformers (save_pretrained) and import that"
                % (self._path, module, name))
        return make()

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"
                and len(pid) >= 5 and isinstance(pid[1], _StorageType)):
            raise InputError("%s: unexpected persistent id %r in the pickle (not a torch "
                             "tensor storage)" % (self._path, pid[:2] if isinstance(
                                 pid, tuple) else type(pid).__name__))
        return self._persistent_load(pid)


def _unpickle(data, path, persistent_load=None):
    def refuse(pid):
        raise InputError("%s: a storage reference where none may be" % path)
    stream = data if hasattr(data, "read") else io.BytesIO(data)
    return _RestrictedUnpickler(stream, path, persistent_load or refuse).load()


def _zip_state(data, path):
    archive = zipfile.ZipFile(io.BytesIO(data))
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise InputError("%s is a zip file but not a torch checkpoint (no single data.pkl "
                         "entry; it has %s)" % (path, ", ".join(archive.namelist()[:5])))
    root = pickles[0][:-len("data.pkl")]
    storages = {}

    def read_bytes(key):
        return archive.read("%sdata/%s" % (root, key))

    def load(pid):
        key = str(pid[2])
        if key not in storages:
            storages[key] = _Storage(pid[1], key, read_bytes)
        return storages[key]
    return _unpickle(archive.read(pickles[0]), path, load)


def _legacy_state(data, path):
    stream = io.BytesIO(data)
    if _unpickle(stream, path) != LEGACY_MAGIC:
        raise InputError("%s is neither a zip nor a legacy torch file (no torch magic "
                         "number); expected a pytorch_model.bin written by torch.save" % path)
    protocol = _unpickle(stream, path)
    if protocol != LEGACY_PROTOCOL:
        raise InputError("%s: torch legacy protocol %r, expected %d" % (path, protocol,
                                                                        LEGACY_PROTOCOL))
    system = _unpickle(stream, path)
    if isinstance(system, dict) and not system.get("little_endian", True):
        raise InputError("%s was written on a big-endian machine: not supported" % path)
    storages = {}
    raw = {}  # key -> bytes, filled after the state dict's pickle

    def load(pid):
        key = str(pid[2])
        if key not in storages:
            storages[key] = _Storage(pid[1], key, lambda k: raw[k])
        if len(pid) > 5 and pid[5] is not None:  # a view of a storage (torch < 1.0)
            raise InputError("%s uses storage views (torch < 1.0): not supported" % path)
        return storages[key]
    state = _unpickle(stream, path, load)
    keys = _unpickle(stream, path)
    for key in keys:
        storage = storages.get(str(key))
        header = stream.read(8)
        if len(header) != 8 or storage is None:
            raise InputError("%s is truncated or damaged at storage %s" % (path, key))
        (count,) = struct.unpack("<q", header)
        nbytes = count * storage.storage_type.numpy_dtype.itemsize
        raw[str(key)] = stream.read(nbytes)
        if len(raw[str(key)]) != nbytes:
            raise InputError("%s is truncated: storage %s has %d of %d bytes"
                             % (path, key, len(raw[str(key)]), nbytes))
    return state


def load_state_dict(data, path):
    """{name: np.ndarray} of a torch-saved state dict given as bytes; path names the file
    in errors. bfloat16 becomes float32 (exactly); other dtypes stay."""
    try:
        if data[:4] == b"PK\x03\x04":
            state = _zip_state(data, path)
        else:
            state = _legacy_state(data, path)
    except InputError:
        raise
    except Exception as err:  # whatever a damaged or hostile pickle provokes
        raise InputError("%s is not a readable torch state dict (%s: %s)"
                         % (path, type(err).__name__, err))
    if isinstance(state, dict) and "state_dict" in state and isinstance(
            state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint wrapping the weights
    if not isinstance(state, dict):
        raise InputError("%s holds a %s, not a state dict of tensors"
                         % (path, type(state).__name__))
    arrays = {}
    for name, value in state.items():
        if not isinstance(value, _Tensor):
            raise InputError("%s: entry %r is a %s, not a tensor"
                             % (path, name, type(value).__name__))
        try:
            arrays[str(name)] = value.array()
        except Exception as err:  # a storage too short, a shape too large, ...
            raise InputError("%s: tensor %s cannot be read (%s): the file is damaged"
                             % (path, name, err))
    return arrays
