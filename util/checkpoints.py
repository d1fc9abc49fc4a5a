"""Which checkpoint a tool uses, and starting a graph's variables from a checkpoint that need
not hold all of them."""

import hashlib
import os
import re

import tensorflow.compat.v1 as tf

from util import fs
from util.errors import InputError


def _step(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def global_step(prefix):
    """The global_step a checkpoint was saved at (read from it, not from its name)."""
    return int(tf.train.load_checkpoint(fs.tf_checkpoint_path(prefix))
               .get_tensor("global_step"))


def find_checkpoint(directory, checkpoint=None, missing=None):
    """The checkpoint prefix a tool reads, by one rule for every tool:

    1. `checkpoint`, when given: a prefix whose .index exists, or a directory (then this
       rule applies to it);
    2. the newest checkpoint of a run of ours (latest_checkpoint: the state file's, or
       the highest model.ckpt-N);
    3. else (a released model): its only *.index file;
    4. several checkpoints without steps: an error asking to pick one.
    missing: the message when there is none ({dir} filled in).
    """
    if checkpoint:
        if fs.isdir(checkpoint):
            return find_checkpoint(checkpoint, missing=missing)
        if not fs.exists(checkpoint + ".index"):
            check_not_hf(checkpoint, "checkpoint")
            raise InputError("checkpoint %s not found (expected %s.index and its data files)"
                             % (checkpoint, checkpoint))
        return checkpoint
    latest = latest_checkpoint(directory)
    if latest:
        return latest
    prefixes = ([p[:-len(".index")] for p in fs.glob(fs.join(directory, "*.index"))]
                if fs.isdir(directory) else [])
    if len(prefixes) == 1:
        return prefixes[0]
    if prefixes:
        raise InputError("%s holds several checkpoints (%s): pick one by its prefix "
                         "(--checkpoint of the export tools, \"init_checkpoint\" of "
                         "fine-tuning)" % (
            directory, ", ".join(sorted(fs.basename(p) for p in prefixes))))
    check_not_hf(directory, "model dir")
    raise InputError((missing or "no checkpoint in {dir} (expected model.ckpt-N.* or "
                      "electra_model.* files with a .index)").format(dir=directory))


def own_checkpoints(directory):
    """The prefixes of the model.ckpt-N checkpoints (complete: their .index is written
    last) in directory, by step."""
    if not fs.isdir(directory):
        return []
    prefixes = [p[:-len(".index")] for p in fs.glob(fs.join(directory, "model.ckpt-*.index"))]
    return sorted((p for p in prefixes if OWN_CHECKPOINT.match(fs.basename(p))), key=_step)


def latest_checkpoint(directory):
    """The newest checkpoint a run of ours wrote in directory, or None: the one the
    `checkpoint` state file names, else -- no state file, or one naming files that are not
    there (a dir copied, moved or synced from a bucket) -- the highest model.ckpt-N. The
    one rule every runner resumes, evaluates and predicts by."""
    if not fs.isdir(directory):
        return None
    listed = tf.train.latest_checkpoint(directory)
    if listed:
        return listed
    found = own_checkpoints(directory)
    return found[-1] if found else None


def repair_state_file(directory):
    """Before training resumes in directory: when its state file is missing or names
    files that are not there but model.ckpt-N files are (see latest_checkpoint), writes
    the state file listing them, so that TensorFlow, which restores by the state file
    alone, resumes from the newest instead of starting over on top of them."""
    if tf.train.latest_checkpoint(directory):
        return
    found = own_checkpoints(directory)
    if not found:
        return
    print("%s has checkpoints but no usable `checkpoint` state file: resuming from %s "
          "(state file rewritten)" % (directory, fs.basename(found[-1])), flush=True)
    # Relative names, as our Saver writes them: TensorFlow keeps a name relative to an
    # absolute dir as it is, and rewrites a path under a relative dir (or a bucket's) to one.
    names = [fs.basename(p) if os.path.isabs(directory) else p for p in found]
    tf.train.update_checkpoint_state(directory, names[-1], names)


def identity(prefix):
    """A checkpoint's identity by content: "sha256:" and the digest of its .index file,
    which holds every tensor's checksum (the same checkpoint moved or copied elsewhere has
    the same identity)."""
    if fs.isdir(prefix):  # a dir given as init_checkpoint: the checkpoint it holds
        prefix = find_checkpoint(prefix)
    return "sha256:" + hashlib.sha256(fs.read_bytes(prefix + ".index")).hexdigest()


def init_matching_variables(checkpoint, variables):
    """Initialises every variable in `variables` that the checkpoint holds under the same name
    with the same shape (tf.train.init_from_checkpoint: the values load when the session
    initialises). Others keep their initialisers: a task head, a resized embedding table.

    Returns (sorted names restored, names not restored in graph order).
    """
    checkpoint = fs.tf_checkpoint_path(checkpoint)
    ckpt_shapes = dict(tf.train.list_variables(checkpoint))
    assignment, fresh = {}, []
    for var in variables:
        name = var.op.name
        if name in ckpt_shapes and list(ckpt_shapes[name]) == var.shape.as_list():
            assignment[name] = name
        else:
            fresh.append(name)
    tf.train.init_from_checkpoint(checkpoint, assignment)
    return sorted(assignment), fresh


# A model config's sizes that a variable's dimension can be: what the shape check names
# as the likely difference (read with getattr from a model.modeling.BertConfig-like object).
SIZE_HPARAMS = ("hidden_size", "embedding_size", "intermediate_size",
                "max_position_embeddings", "type_vocab_size", "vocab_size")
LAYER = re.compile(r"^(.*/)layer_(\d+)/")


def _shape_text(shape):
    return "[%s]" % ", ".join("?" if d is None else str(d) for d in shape)


def _matches(found, wanted):
    """found (a checkpoint's shape) fits wanted, whose None dimensions fit any size."""
    return len(found) == len(wanted) and all(w is None or f == w
                                             for f, w in zip(found, wanted))


def _vocab_rows(name, found, wanted):
    """(rows found, rows wanted) when a word-embedding table has another row count."""
    if (name.endswith("word_embeddings") and found and wanted
            and wanted[0] is not None and found[0] != wanted[0]):
        return found[0], wanted[0]
    return None


def _layer_counts(names):
    """{scope prefix: number of distinct layer_N} of variable names."""
    layers = {}
    for match in filter(None, map(LAYER.match, names)):
        layers.setdefault(match.group(1), set()).add(match.group(2))
    return {prefix: len(found) for prefix, found in layers.items()}


def _layer_difference(ckpt_names, wanted_names):
    """'num_hidden_layers 4 in the checkpoint (electra/encoder/layer_*), 12 in the model'
    or ''."""
    found, wanted = _layer_counts(ckpt_names), _layer_counts(wanted_names)
    for prefix in sorted(set(found) & set(wanted)):
        if found[prefix] != wanted[prefix]:
            return ("num_hidden_layers %d in the checkpoint (%slayer_*), %d in the model"
                    % (found[prefix], prefix, wanted[prefix]))
    return ""


def _size_differences(found, wanted, model_config):
    """['hidden_size 64 in the checkpoint, 256 in the model', ...] for the dimensions that
    differ, each named after the model_config size it equals (several when they coincide)."""
    if len(found) != len(wanted):
        return ["%d dimensions in the checkpoint, %d in the model" % (len(found), len(wanted))]
    return ["%s %d in the checkpoint, %d in the model" % (
        " or ".join(key for key in SIZE_HPARAMS if getattr(model_config, key, None) == w)
        or "a dimension of", f, w) for f, w in zip(found, wanted) if w is not None and f != w]


def model_label(model_config):
    """'the 12-layer 256-hidden model' for a BertConfig-like object."""
    return "the %d-layer %d-hidden model" % (model_config.num_hidden_layers,
                                             model_config.hidden_size)


def check_variable_shapes(checkpoint, expected, remedy, model_config=None, require="some",
                          what="checkpoint", vocab_remedy=None, missing_remedy=None,
                          scope_remedy=None):
    """Compares the variables a checkpoint holds with the shapes a model expects, before
    anything restores them (TensorFlow would fail mid-restore, or init_matching_variables
    would quietly skip them); raises InputError naming the checkpoint, a variable, the
    shape found and the shape expected, what probably differs and what to do.

    checkpoint: the prefix. expected: {variable name: shape list} of the variables the run
      restores; a None dimension fits any size ([vocab_size, None] checks a table's rows).
    remedy: what to do about variables of other shapes (another model size: the runner's
      hparams or flags); vocab_remedy: the same for a word-embedding table of another row
      count (another vocab), default "use the vocab it was trained with".
    require: which expected variables the checkpoint must hold:
      "all" -- every one (resuming a run: the Saver restores them all); missing_remedy
        says what to do instead ({checkpoint} filled in);
      "some" -- at least one (a warm start: the rest keep their initialisers); when it
        holds none, scope_remedy ({scope} filled in) says what to set if it holds them
        under another top-level scope (bert/ for electra/);
      "present" -- none (only the ones it holds are compared).
    model_config: the model's shape (a model.modeling.BertConfig): messages name the
      model by its layers and hidden size, and the size (SIZE_HPARAMS) that differs; with
      None, "the model" and the dimensions alone.
    what: how the message names the checkpoint ("checkpoint", "init_checkpoint").

    Order: a word-embedding table of another row count first (another vocab is the usual
    mistake), then the first other variable of another shape (by name), then missing ones.
    """
    model = model_label(model_config) if model_config else "the model"
    ckpt_shapes = {name: list(shape) for name, shape in
                   tf.train.list_variables(fs.tf_checkpoint_path(checkpoint))}
    wrong = [(_vocab_rows(name, ckpt_shapes[name], shape) is None, name)
             for name, shape in expected.items()
             if name in ckpt_shapes and not _matches(ckpt_shapes[name], shape)]
    if wrong:
        _, name = min(wrong)
        found, wanted = ckpt_shapes[name], expected[name]
        rows = _vocab_rows(name, found, wanted)
        if rows:
            raise InputError(
                "%s %s has a %d-token embedding table (%s %s) but vocab_size is %d: %s"
                % (what, checkpoint, rows[0], name, _shape_text(found), rows[1],
                   vocab_remedy or "use the vocab it was trained with"))
        more = " (and %d more variables of other shapes)" % (len(wrong) - 1) \
            if len(wrong) > 1 else ""
        # What differs, over every variable of another shape: each size once, the layers.
        differs = []
        for _, other in sorted(wrong):
            for difference in _size_differences(ckpt_shapes[other], expected[other],
                                                model_config):
                if difference not in differs:
                    differs.append(difference)
        layers = _layer_difference(ckpt_shapes, expected)
        differs = ", ".join(differs[:4] + ([layers] if layers else []))
        raise InputError("%s %s has %s with shape %s but %s needs %s%s: %s; %s"
                         % (what, checkpoint, name, _shape_text(found), model,
                            _shape_text(wanted), more, differs, remedy))
    missing = sorted(set(expected) - set(ckpt_shapes))
    if not missing or require == "present" or (require == "some"
                                               and len(missing) < len(expected)):
        return
    layers = _layer_difference(ckpt_shapes, expected)
    layers = "; " + layers if layers else ""
    if require == "all":
        raise InputError("%s %s lacks %d of the %d variables %s needs (e.g. %s)%s: %s"
                         % (what, checkpoint, len(missing), len(expected), model,
                            ", ".join(missing[:3]), layers,
                            (missing_remedy or remedy).format(checkpoint=checkpoint)))
    # require "some": it holds none of them; under another scope?
    scopes = sorted({n.split("/", 1)[0] for n in ckpt_shapes if "/" in n})
    renamed = [scope for scope in scopes if any(
        scope + "/" + n.split("/", 1)[1] in ckpt_shapes for n in missing if "/" in n)]
    if renamed and scope_remedy:
        hint = " but has %s/ ones: %s" % (renamed[0], scope_remedy.format(scope=renamed[0]))
    else:
        hint = "; its variables are under %s" % (", ".join(s + "/" for s in scopes)
                                                 or "no scope")
    raise InputError("%s %s holds none of the %d variables %s needs (e.g. %s)%s"
                     % (what, checkpoint, len(expected), model, missing[0], hint))


def write_checkpoint(prefix, arrays):
    """Writes {variable name: array} as a TF checkpoint (an .index and one data file) at
    prefix, as tf.train.Saver would, with no `checkpoint` state file and no graph. The
    arrays are fed to the save op, not baked into a graph as constants, so a model of any
    size fits (a GraphDef stops at 2 GB)."""
    names = sorted(arrays)
    with tf.Graph().as_default():
        feeds = {name: tf.placeholder(tf.as_dtype(arrays[name].dtype), arrays[name].shape)
                 for name in names}
        save = tf.raw_ops.SaveV2(prefix=fs.tf_checkpoint_path(prefix), tensor_names=names,
                                 shape_and_slices=[""] * len(names),
                                 tensors=[feeds[name] for name in names])
        with tf.Session() as session:
            session.run(save, {feeds[name]: arrays[name] for name in names})


# A checkpoint of a run of ours: model.ckpt-<step>. Anything else in a model dir (the
# released models' electra_model / bert_model.ckpt, an import's) holds weights to start from.
OWN_CHECKPOINT = re.compile(r"^model\.ckpt-\d+$")


def starting_checkpoint(directory):
    """The prefix of the one checkpoint in directory that no run of ours wrote (a released
    or imported model's weights: what a run in that dir starts from), or None."""
    if not fs.isdir(directory):
        return None
    prefixes = sorted(p[:-len(".index")] for p in fs.glob(fs.join(directory, "*.index"))
                      if not OWN_CHECKPOINT.match(fs.basename(p)[:-len(".index")]))
    if len(prefixes) > 1:
        raise InputError("%s holds several checkpoints to start from (%s): keep one, or "
                         "name it as \"init_checkpoint\"" % (
                             directory, ", ".join(fs.basename(p) for p in prefixes)))
    return prefixes[0] if prefixes else None


def check_not_hf(path, what):
    """An HF model dir or weight file where a TF checkpoint is expected is a clear error
    naming the import command (TensorFlow would say 'not an sstable' or 'not found')."""
    from util import hf_weights  # only here: nothing else of checkpoints needs it
    if not path or fs.exists(path + ".index"):
        return
    for candidate in (path, fs.dirname(path)):
        if candidate and hf_weights.is_hf_model(candidate):
            hf_dir = candidate if fs.isdir(candidate) else fs.dirname(candidate)
            raise InputError(
                "%s %s is a Hugging Face model (config.json and PyTorch/safetensors/h5 "
                "weights), not a TensorFlow checkpoint: convert it once with `python "
                "scripts/import_hf.py %s --out D/models/M` and use D/models/M"
                % (what, path, hf_dir))
