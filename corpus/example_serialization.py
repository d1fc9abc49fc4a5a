"""tf.train.Example bytes written by hand, equal to TensorFlow's deterministic serialisation.

No TensorFlow here: the builder's job processes serialise examples without importing it.
"""


def _varint(value):
    """The protobuf base-128 varint of a non-negative int."""
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


class _VarintCache(dict):
    """int -> varint bytes, each computed on first use."""

    def __missing__(self, value):
        encoded = self[value] = _varint(value)
        return encoded


_VARINTS = _VarintCache()


def _field(number, payload):
    """A length-delimited protobuf field: tag, length, payload."""
    return _VARINTS[number << 3 | 2] + _VARINTS[len(payload)] + payload


def _map_entry(name, values):
    """One encoded entry of the Features.feature map: an Int64List feature.

    Entry: key (1), value (2); Feature.int64_list (3); Int64List.value (1),
    packed.
    """
    packed = b"".join(map(_VARINTS.__getitem__, values))
    feature = _field(3, _field(1, packed))
    return _field(1, _field(1, name.encode("utf-8")) + _field(2, feature))


# Masks and segment ids take few distinct values, so their map entries are
# cached (ids rarely repeat, so theirs are not); bounded, as an entry holds
# a max_seq_length tuple.
_CACHED_FEATURES = ("input_mask", "segment_ids")
_ENTRY_CACHE = {}
_ENTRY_CACHE_SIZE = 4096


def _cached_map_entry(name, values):
    """`_map_entry`, from the cache when the same values came before."""
    key = (name, tuple(values))
    entry = _ENTRY_CACHE.get(key)
    if entry is None:
        if len(_ENTRY_CACHE) >= _ENTRY_CACHE_SIZE:
            _ENTRY_CACHE.clear()
        entry = _ENTRY_CACHE[key] = _map_entry(name, values)
    return entry


def serialize_example(features):
    """Serialize a features dict as a tf.train.Example (deterministic bytes).

    The wire format is written by hand: building the message objects took
    longer than tokenizing on the fast path. The bytes equal those of
    tf.train.Example.SerializeToString(deterministic=True), which sorts the
    map by key so the same seed gives byte-identical files. Values must be
    non-negative (token ids, masks, segment ids).
    """
    entries = [_cached_map_entry(name, features[name])
               if name in _CACHED_FEATURES else _map_entry(name, features[name])
               for name in sorted(features)]
    # Example.features (1) holding the map entries.
    return _field(1, b"".join(entries))
