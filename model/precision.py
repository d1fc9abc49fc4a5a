"""Speed options of the training graphs: mixed precision and XLA.

mixed_precision (the `mixed_precision` hparam of pre-training and fine-tuning):
  "none"  everything in float32 (the default, as in the official code);
  "bf16"  the encoders' matmuls and activations in bfloat16 (as ELECTRA/BERT on TPUs);
          bfloat16 has float32's exponent range, so no loss scaling is needed;
  "fp16"  the same in float16, with dynamic loss scaling (GPU only; see
          model/optimization.py DynamicLossScale).
Whatever the choice, variables (master weights), optimizer slots and checkpoints stay
float32 under their official names: model/modeling.py casts a float32 variable to the
compute dtype where it is read, computes embeddings, LayerNorm statistics and the
attention softmax in float32, and hands float32 encoder outputs to the heads, so logits
and losses are float32 too.

use_xla: the model and optimizer ops are marked for XLA compilation (jit_scope; the only
switch that compiles on CPU short of the TF_XLA_FLAGS environment variable) and the
session turns on XLA auto-clustering (global_jit_level, which GPUs honour). TPUs always
compile with XLA, so use_xla changes nothing there.
"""

import contextlib

import tensorflow.compat.v1 as tf

from util.errors import InputError

MIXED_PRECISION_CHOICES = ("none", "bf16", "fp16")
_COMPUTE_DTYPES = {"none": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


def compute_dtype(mixed_precision):
    """The dtype the encoder computes in for a mixed_precision choice."""
    return _COMPUTE_DTYPES[mixed_precision]


def choice_error(value):
    """The message for a mixed_precision value that is not one of the choices."""
    return ("mixed_precision must be one of %s, got %r (\"bf16\" is the CPU/TPU choice, "
            "\"fp16\" needs a GPU)"
            % (", ".join('"%s"' % c for c in MIXED_PRECISION_CHOICES), value))


def check_supported(mixed_precision, use_tpu, source):
    """fp16 only where float16 is fast and loss scaling is in place: on a GPU.

    Called before anything is written, so a refused run leaves no trace.
    """
    if mixed_precision != "fp16":
        return
    if use_tpu:
        raise InputError("%s: mixed_precision \"fp16\" is not for TPUs (they compute in "
                         "bfloat16): set \"mixed_precision\": \"bf16\"" % source)
    if not tf.config.list_physical_devices("GPU"):
        raise InputError("%s: mixed_precision \"fp16\" needs a GPU and this machine has none "
                         "visible (float16 on CPU is emulated, slower than float32): set "
                         "\"mixed_precision\": \"bf16\", the CPU/TPU choice, or \"none\""
                         % source)


def xla_scope(use_xla):
    """Context in which the ops created are compiled with XLA (when use_xla)."""
    return tf.xla.experimental.jit_scope() if use_xla else contextlib.nullcontext()


def session_config(use_xla):
    """Session config for the training loop: None (its default, the Estimator's) or soft
    placement plus XLA auto-clustering."""
    if not use_xla:
        return None
    # allow_soft_placement is what the Estimator's default config has too.
    config = tf.ConfigProto(allow_soft_placement=True)
    config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
    return config
