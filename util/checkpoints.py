"""Which checkpoint a tool uses, and starting a graph's variables from a checkpoint that need
not hold all of them."""

import re

import tensorflow.compat.v1 as tf

from util import fs
from util.errors import InputError


def _step(prefix):
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def find_checkpoint(directory, checkpoint=None, missing=None):
    """The checkpoint prefix a tool reads, by one rule for every tool:

    1. `checkpoint`, when given: a prefix whose .index exists, or a directory (then this
       rule applies to it);
    2. the newest checkpoint the directory's `checkpoint` state file lists;
    3. without a state file (a released model, a copied dir): its only *.index file, or
       among model.ckpt-N files the highest N;
    4. several checkpoints without steps: an error asking to pick one.
    missing: the message when there is none ({dir} filled in).
    """
    if checkpoint:
        if fs.isdir(checkpoint):
            return find_checkpoint(checkpoint, missing=missing)
        if not fs.exists(checkpoint + ".index"):
            raise InputError("checkpoint %s not found (expected %s.index and its data files)"
                             % (checkpoint, checkpoint))
        return checkpoint
    latest = tf.train.latest_checkpoint(directory) if fs.isdir(directory) else None
    if latest:
        return latest
    prefixes = ([p[:-len(".index")] for p in fs.glob(fs.join(directory, "*.index"))]
                if fs.isdir(directory) else [])
    if len(prefixes) == 1:
        return prefixes[0]
    if prefixes and all(_step(p) >= 0 for p in prefixes):
        return max(prefixes, key=_step)
    if prefixes:
        raise InputError("%s holds several checkpoints (%s): pick one by its prefix "
                         "(--checkpoint of the export tools, \"init_checkpoint\" of "
                         "fine-tuning)" % (
            directory, ", ".join(sorted(fs.basename(p) for p in prefixes))))
    raise InputError((missing or "no checkpoint in {dir} (expected model.ckpt-N.* or "
                      "electra_model.* files with a .index)").format(dir=directory))


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
