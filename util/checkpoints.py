"""Starting a graph's variables from a checkpoint that need not hold all of them."""

import tensorflow.compat.v1 as tf

from util import fs


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
