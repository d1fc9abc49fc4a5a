"""Reads the weights of a Hugging Face model directory into NumPy arrays, without torch.

Every layout transformers writes, or has written:
    model.safetensors                      safetensors (parsed here: F32/F16/BF16/F64/ints)
    model.safetensors.index.json + shards  sharded safetensors
    pytorch_model.bin                      torch zip or legacy pickle (util/torch_pickle.py)
    pytorch_model.bin.index.json + shards  sharded torch files
    tf_model.h5                            Keras 2 HDF5 of transformers' TF classes

read_weights returns the tensors under their PyTorch names in PyTorch's layout (a Linear's
weight is [out, in]): the h5 file's TF names (`tf_electra_for_pre_training/electra/encoder/
layer_._0/attention/self/query/kernel:0`) and kernels [in, out] are converted the way
transformers converts them. Names are otherwise left as the file has them (gamma/beta,
with or without the `electra.` prefix): the importer's name mapping decides what they mean.
Every file is read through util.fs, so a model dir may be in a bucket.
"""

import io
import json
import re
import struct

import numpy as np

from util import fs
from util import torch_pickle
from util.errors import InputError

# Weight files in the order a directory's layout is chosen (safetensors first: no pickle).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "tf_model.h5")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".h5", ".index.json")

_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                       "BF16": np.uint16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
                       "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def is_hf_model(path):
    """Whether path is an HF model dir (config.json and a weight file) or an HF weight file:
    what the runners name the import command for."""
    try:
        if fs.isdir(path):
            return fs.exists(fs.join(path, "config.json")) and any(
                fs.exists(fs.join(path, name)) for name in WEIGHT_FILES)
        return fs.basename(path).endswith(WEIGHT_SUFFIXES) and fs.exists(path)
    except fs.errors():
        return False


def weight_file(model_dir):
    """The weight file (or index) of an HF model dir, by WEIGHT_FILES' order."""
    for name in WEIGHT_FILES:
        path = fs.join(model_dir, name)
        if fs.exists(path):
            return path
    present = sorted(fs.basename(p) for p in fs.glob(fs.join(model_dir, "*")))
    raise InputError("%s holds no HF weight file (expected one of %s; it has %s)"
                     % (model_dir, ", ".join(WEIGHT_FILES), ", ".join(present) or "nothing"))


def _read_bytes(path):
    try:
        return fs.read_bytes(path)
    except fs.errors() as err:
        raise InputError("cannot read %s: %s" % (path, fs.error_text(err)))


# ----------------------------------------------------------------------------- safetensors

def read_safetensors(path):
    """{name: array} of a .safetensors file (an 8-byte header length, a JSON header, the
    data). BF16 becomes float32 exactly."""
    data = _read_bytes(path)
    try:
        (header_len,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (struct.error, ValueError, UnicodeDecodeError) as err:
        raise InputError("%s is not a safetensors file (%s)" % (path, err))
    body = memoryview(data)[8 + header_len:]
    arrays = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            arrays[name] = _safetensors_tensor(body, entry)
        except (ValueError, TypeError, KeyError) as err:
            raise InputError("%s: tensor %s cannot be read (%s): the file is truncated or "
                             "damaged" % (path, name, err))
    return arrays


def _safetensors_tensor(body, entry):
    dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
    if dtype is None:
        raise ValueError("dtype %s is not one of %s" % (entry["dtype"],
                                                         ", ".join(_SAFETENSORS_DTYPES)))
    start, end = (int(x) for x in entry["data_offsets"])
    shape = tuple(int(n) for n in entry["shape"])
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if not 0 <= start <= end <= len(body) or end - start != nbytes or min(shape,
                                                                          default=0) < 0:
        raise ValueError("bytes %d-%d of %d for shape %s" % (start, end, len(body),
                                                             list(shape)))
    array = np.frombuffer(body[start:end], dtype=dtype).reshape(shape)
    if entry["dtype"] == "BF16":
        return torch_pickle.bfloat16_bits_to_float32(array)
    return np.array(array)  # a copy: writable, not a view of the file's bytes


# ----------------------------------------------------------------------------- tf_model.h5

_H5_LAYER = re.compile(r"layer_\._(\d+)")


def _h5_to_torch_name(weight_name):
    """transformers' TF weight name -> its PyTorch name, and whether it is a kernel:
    'tf_electra_for_pre_training/electra/encoder/layer_._0/attention/self/query/kernel:0'
    -> ('electra.encoder.layer.0.attention.self.query.weight', True)."""
    name = weight_name.split(":")[0]
    parts = name.split("/")[1:]  # the first part is the model's own name
    parts = [re.sub(r"^\w+___", "", part) for part in parts]  # mlm___cls -> cls
    leaf = parts[-1]
    kernel = leaf == "kernel"
    parts[-1] = {"kernel": "weight", "gamma": "weight", "beta": "bias",
                 "embeddings": "weight"}.get(leaf, leaf)
    return _H5_LAYER.sub(r"layer.\1", ".".join(parts)), kernel


def read_h5(path):
    """{PyTorch name: array in PyTorch layout} of a transformers tf_model.h5."""
    import h5py  # a tensorflow dependency; only this format needs it
    data = None if fs.is_local(path) else io.BytesIO(_read_bytes(path))
    try:
        handle = h5py.File(data if data is not None else path, "r")
    except OSError as err:
        raise InputError("%s is not an HDF5 file (%s)" % (path, err))
    with handle:
        if "layer_names" not in handle.attrs:
            raise InputError("%s has no Keras layer_names: not a tf_model.h5 written by "
                             "transformers" % path)
        try:
            return _h5_arrays(handle, path)
        except InputError:
            raise
        except Exception as err:  # h5py's errors for a damaged file are of many types
            raise InputError("%s cannot be read (%s: %s): the file is truncated or damaged"
                             % (path, type(err).__name__, err))


def _h5_arrays(handle, path):
    arrays = {}
    for layer in handle.attrs["layer_names"]:
        group = handle[_text(layer)]
        for weight in group.attrs.get("weight_names", []):
            weight = _text(weight)
            name, kernel = _h5_to_torch_name(weight)
            array = np.array(group[weight])
            if kernel:
                array = np.ascontiguousarray(array.T)
            if name in arrays and not np.array_equal(arrays[name], array):
                raise InputError("%s lists %s twice with different values" % (path, name))
            arrays[name] = array  # tied weights are listed under each layer using them
    return arrays


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# ----------------------------------------------------------------------------- any layout

def _read_one(path):
    name = fs.basename(path)
    if name.endswith(".safetensors"):
        return read_safetensors(path)
    if name.endswith(".bin"):
        return torch_pickle.load_state_dict(_read_bytes(path), path)
    if name.endswith(".h5"):
        return read_h5(path)
    raise InputError("%s: unknown weight file type (expected .safetensors, .bin or .h5)"
                     % path)


def _read_index(path):
    """The shards an index.json's weight_map names (files beside it), each read once,
    merged."""
    try:
        weight_map = json.loads(fs.read_text(path))["weight_map"]
        if not isinstance(weight_map, dict):
            raise ValueError("weight_map is not an object")
    except (ValueError, KeyError, TypeError) as err:
        raise InputError("%s is not a weight index (a JSON object with weight_map): %s"
                         % (path, err))
    arrays = {}
    directory = fs.dirname(path)
    for shard in sorted(set(map(str, weight_map.values()))):
        if "/" in shard or "\\" in shard or shard in (".", ".."):
            raise InputError("%s names the shard %r: shards are files beside the index"
                             % (path, shard))
        shard_path = fs.join(directory, shard)
        if not fs.exists(shard_path):
            raise InputError("%s names the shard %s, which is missing" % (path, shard_path))
        arrays.update(_read_one(shard_path))
    listed = set(weight_map)
    if listed != set(arrays):
        gone = sorted(listed - set(arrays)) or sorted(set(arrays) - listed)
        raise InputError("%s and its shards disagree on %d tensors (e.g. %s)"
                         % (path, len(gone), gone[0]))
    return arrays


def read_weights(path):
    """({PyTorch-style name: array}, the file read) of an HF model dir or weight file."""
    if fs.isdir(path):
        path = weight_file(path)
    if not fs.exists(path):
        raise InputError("%s does not exist" % path)
    if path.endswith(".index.json"):
        return _read_index(path), path
    return _read_one(path), path
