"""AdamW with warm-up + polynomial decay, global-norm clipping and layer-wise lr decay.

Behaviour of the official BERT/ELECTRA optimizer, kept exactly: no bias correction,
decoupled weight decay added to the Adam update (not to the loss), no decay on
LayerNorm and bias parameters, slots stored as `<param>/adam_m` and `<param>/adam_v`
so checkpoints interoperate with the official code.
"""

import collections
import re

import tensorflow.compat.v1 as tf


def learning_rate_schedule(learning_rate, num_train_steps, num_warmup_steps=0,
                           warmup_proportion=0.0, lr_decay_power=1.0):
    """Linear warm-up to `learning_rate`, then polynomial decay to 0 at num_train_steps."""
    global_step = tf.train.get_or_create_global_step()
    step = tf.cast(global_step, tf.float32)
    decayed = tf.train.polynomial_decay(learning_rate, global_step, num_train_steps,
                                        end_learning_rate=0.0, power=lr_decay_power,
                                        cycle=False)
    warmup_steps = max(num_train_steps * warmup_proportion, num_warmup_steps)
    if warmup_steps > 0:
        decayed *= tf.minimum(1.0, step / float(warmup_steps))
    return decayed


def layerwise_lr_multipliers(n_layers, layer_decay):
    """Ordered {name fragment: lr multiplier}: lower layers learn more slowly.

    Depth 0 is the embeddings, depth i+1 encoder layer i, depth n_layers+2 the task head;
    multiplier = layer_decay ** (n_layers + 2 - depth). The first matching fragment wins.
    """
    depths = collections.OrderedDict([
        ("/embeddings/", 0), ("/embeddings_project/", 0), ("task_specific/", n_layers + 2)])
    for layer in range(n_layers):
        depths["encoder/layer_%d/" % layer] = layer + 1
    return collections.OrderedDict(
        (key, layer_decay ** (n_layers + 2 - depth)) for key, depth in depths.items())


def create_optimizer(loss, learning_rate, num_train_steps, weight_decay_rate=0.0,
                     use_tpu=False, num_warmup_steps=0, warmup_proportion=0.0,
                     lr_decay_power=1.0, layerwise_lr_decay_power=-1,
                     n_transformer_layers=None, clip_norm=1.0, variables=None):
    """Returns (train_op, learning_rate tensor). train_op also increments global_step."""
    global_step = tf.train.get_or_create_global_step()
    lr = learning_rate_schedule(learning_rate, num_train_steps, num_warmup_steps,
                                warmup_proportion, lr_decay_power)
    multipliers = None
    if layerwise_lr_decay_power > 0:
        multipliers = layerwise_lr_multipliers(n_transformer_layers, layerwise_lr_decay_power)
    optimizer = AdamWeightDecayOptimizer(
        learning_rate=lr, weight_decay_rate=weight_decay_rate, beta_1=0.9, beta_2=0.999,
        epsilon=1e-6, exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
        lr_multipliers=multipliers)
    if use_tpu:
        optimizer = tf.tpu.CrossShardOptimizer(optimizer)
    tvars = variables if variables is not None else tf.trainable_variables()
    grads = tf.gradients(loss, tvars)
    grads, _ = tf.clip_by_global_norm(grads, clip_norm=clip_norm)
    train_op = optimizer.apply_gradients(zip(grads, tvars), global_step=global_step)
    # AdamWeightDecayOptimizer does not touch global_step itself (as in BERT).
    train_op = tf.group(train_op, [global_step.assign(global_step + 1)])
    return train_op, lr


class AdamWeightDecayOptimizer(tf.train.Optimizer):
    """Adam with decoupled weight decay, as in BERT/ELECTRA."""

    def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=None, lr_multipliers=None,
                 name="AdamWeightDecayOptimizer"):
        super(AdamWeightDecayOptimizer, self).__init__(False, name)
        self.learning_rate = learning_rate
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.exclude_from_weight_decay = exclude_from_weight_decay or []
        self.lr_multipliers = lr_multipliers or {}

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        assignments = []
        for grad, param in grads_and_vars:
            if grad is None or param is None:
                continue
            if isinstance(grad, tf.IndexedSlices):  # embedding lookups give sparse grads
                grad = tf.convert_to_tensor(grad)
            param_name = _variable_name(param.name)
            m = tf.get_variable(param_name + "/adam_m", shape=param.shape.as_list(),
                                dtype=tf.float32, trainable=False,
                                initializer=tf.zeros_initializer())
            v = tf.get_variable(param_name + "/adam_v", shape=param.shape.as_list(),
                                dtype=tf.float32, trainable=False,
                                initializer=tf.zeros_initializer())
            next_m = self.beta_1 * m + (1.0 - self.beta_1) * grad
            next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
            update = next_m / (tf.sqrt(next_v) + self.epsilon)
            if self.weight_decay_rate > 0 and self._use_weight_decay(param_name):
                update += self.weight_decay_rate * param
            next_param = param - self._lr_for(param_name) * update
            assignments.extend([param.assign(next_param), m.assign(next_m), v.assign(next_v)])
        return tf.group(*assignments, name=name)

    def _use_weight_decay(self, param_name):
        return not any(re.search(r, param_name) for r in self.exclude_from_weight_decay)

    def _lr_for(self, param_name):
        for fragment, multiplier in self.lr_multipliers.items():
            if fragment in param_name:
                return self.learning_rate * multiplier
        return self.learning_rate

    # The base class's slot machinery is bypassed: apply_gradients does all the work.
    def _apply_dense(self, grad, var):
        raise NotImplementedError()

    def _resource_apply_dense(self, grad, handle):
        raise NotImplementedError()

    def _resource_apply_sparse(self, grad, handle, indices):
        raise NotImplementedError()


def _variable_name(tensor_name):
    """'electra/encoder/.../kernel:0' -> 'electra/encoder/.../kernel'."""
    match = re.match("^(.*):\\d+$", tensor_name)
    return match.group(1) if match else tensor_name
