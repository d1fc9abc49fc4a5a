"""AdamW with warm-up + polynomial decay, global-norm clipping and layer-wise lr decay.

Behaviour of the official BERT/ELECTRA optimizer, kept exactly: no bias correction,
decoupled weight decay added to the Adam update (not to the loss), no decay on
LayerNorm and bias parameters, slots stored as `<param>/adam_m` and `<param>/adam_v`
so checkpoints interoperate with the official code. float16 training adds a dynamic loss
scale (DynamicLossScale), kept out of checkpoints.
"""

import collections
import re

import tensorflow.compat.v1 as tf

from util import distribute

# Adam's two slots of a parameter are checkpointed as <param><suffix> (the official names).
SLOT_SUFFIXES = ("/adam_m", "/adam_v")


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

    Depth 0 is the embeddings, depth i+1 encoder layer i, depth n_layers+2 the task head
    (the official keys); multiplier = layer_decay ** (n_layers + 2 - depth). The pooler
    of BERT-family encoders (model_type "bert"; the official ELECTRA encoder has none)
    sits between the top layer and the head, at depth n_layers+1. A variable matching no
    fragment is an error (AdamWeightDecayOptimizer._lr_for), as in the official optimizer.
    """
    depths = collections.OrderedDict([
        ("/embeddings/", 0), ("/embeddings_project/", 0), ("task_specific/", n_layers + 2),
        ("/pooler/", n_layers + 1)])
    for layer in range(n_layers):
        depths["encoder/layer_%d/" % layer] = layer + 1
    return collections.OrderedDict(
        (key, layer_decay ** (n_layers + 2 - depth)) for key, depth in depths.items())


def create_optimizer(loss, learning_rate, num_train_steps, weight_decay_rate=0.0,
                     use_tpu=False, num_warmup_steps=0, warmup_proportion=0.0,
                     lr_decay_power=1.0, layerwise_lr_decay_power=-1,
                     n_transformer_layers=None, clip_norm=1.0, variables=None,
                     loss_scaling=False):
    """Returns (train_op, learning_rate tensor). train_op also increments global_step.

    loss_scaling: a DynamicLossScale (for float16 compute): a step whose gradients are
    not finite leaves the weights and slots alone (global_step still advances).

    Under a tf.distribute strategy (a model_fn replica), `loss` must be this replica's
    share of the global loss (the replicas' losses add up to it, as the objectives here
    compute it): the gradients are summed over the replicas BEFORE global-norm clipping,
    so every replica clips and applies the same, global, gradient.
    """
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
    loss_scale = DynamicLossScale() if loss_scaling else None
    if loss_scale is None:
        grads, all_finite = _sum_over_replicas(tf.gradients(loss, tvars)), None
    else:  # summed before the check, so that every replica takes the same decision
        grads = _sum_over_replicas(tf.gradients(loss * loss_scale.value, tvars))
        grads, all_finite = loss_scale.unscale(grads)
    grads, _ = tf.clip_by_global_norm(grads, clip_norm=clip_norm)
    train_op = optimizer.apply_gradients(zip(grads, tvars), global_step=global_step,
                                         should_apply=all_finite)
    if loss_scale is not None:
        train_op = tf.group(train_op, loss_scale.update(all_finite))
    # AdamWeightDecayOptimizer does not touch global_step itself (as in BERT). Under a
    # strategy global_step is an ONLY_FIRST_REPLICA variable: one increment per step.
    # After the update, so that everything this step computes (lr, per-example noise)
    # reads the step's own value; on several replicas the order would otherwise vary.
    with tf.control_dependencies([train_op]):
        train_op = tf.group(train_op, [global_step.assign(global_step + 1)])
    return train_op, lr


def _sum_over_replicas(grads):
    """All-reduces (sums) the gradients across replicas; unchanged on one device."""
    present = [i for i, g in enumerate(grads) if g is not None]
    if not present:
        return grads
    # Sparse (embedding) gradients stay IndexedSlices: their sum is the concatenation of
    # the replicas' slices, so the global norm below counts them as one device does.
    local = [grads[i] for i in present]
    summed = distribute.cross_replica_sum(local)
    if summed is local:  # one replica
        return grads
    out = list(grads)
    for i, g in zip(present, summed):
        out[i] = g
    return out


class DynamicLossScale(object):
    """Dynamic loss scaling for float16 training.

    The loss is multiplied by the scale before differentiation, so that small gradients
    survive float16's narrow range, and the gradients are divided by it afterwards. A step
    whose gradients overflowed (inf/NaN) is skipped and the scale halved (down to 1);
    after `growth_interval` good steps in a row it doubles. The scale lives in local
    variables: checkpoints keep exactly the official names, and a restarted run starts
    again from `initial_scale` (a few skipped steps find the right scale again).
    """

    def __init__(self, initial_scale=2.0 ** 15, growth_interval=2000):
        self.growth_interval = growth_interval
        # Local (not saved); one copy's update counts, as all replicas agree on it.
        options = dict(trainable=False, collections=[tf.GraphKeys.LOCAL_VARIABLES],
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.scale = tf.get_variable("loss_scale", initializer=float(initial_scale),
                                     **options)
        self.good_steps = tf.get_variable("loss_scale_good_steps", initializer=0, **options)
        self.value = tf.identity(self.scale.read_value())  # one read: scale, then unscale

    def unscale(self, grads):
        """(grads / scale, scalar bool: every gradient finite)."""
        grads = [None if g is None else tf.convert_to_tensor(g) / self.value for g in grads]
        all_finite = tf.reduce_all([tf.reduce_all(tf.is_finite(g))
                                    for g in grads if g is not None])
        return grads, all_finite

    def update(self, all_finite):
        """The op adjusting the scale after a step."""
        grow = tf.logical_and(all_finite, self.good_steps + 1 >= self.growth_interval)
        scale = tf.where(all_finite, tf.where(grow, self.value * 2.0, self.value),
                         tf.maximum(self.value / 2.0, 1.0))
        good_steps = tf.where(tf.logical_and(all_finite, tf.logical_not(grow)),
                              self.good_steps + 1, 0)
        return tf.group(self.scale.assign(scale), self.good_steps.assign(good_steps))


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
        self._should_apply = None  # set by apply_gradients

    def apply_gradients(self, grads_and_vars, global_step=None, name=None,
                        should_apply=None):
        """grads_and_vars: on several replicas, gradients already summed across them.
        should_apply: None, or a scalar bool tensor; where false, the weights and slots
        keep their values (a float16 step skipped by the loss scale)."""
        self._should_apply = should_apply
        grads_and_vars = [(g, p) for g, p in grads_and_vars if g is not None and p is not None]
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            # Mirrored variables are only written in a cross-replica context, on every
            # device at once; the gradients are identical there after the all-reduce.
            return ctx.merge_call(self._apply_mirrored, args=(grads_and_vars, name))
        assignments = []
        for grad, param in grads_and_vars:
            m, v = self._moments(param)
            assignments.extend(self._updates(grad, param, _variable_name(param.name), m, v))
        return tf.group(*assignments, name=name)

    def _apply_mirrored(self, strategy, grads_and_vars, name):
        updates = []
        for grad, param in grads_and_vars:
            m, v = self._moments(param)
            param_name = _variable_name(param.name)  # the mirrored name, not a copy's
            # Inside update(), param, m and v stand for their copy on the device updated.
            updates.append(strategy.extended.update(
                param, lambda p, g, n=param_name, m=m, v=v:
                tf.group(*self._updates(g, p, n, m, v)), args=(grad,), group=True))
        return tf.group(*updates, name=name)

    def _moments(self, param):
        """The Adam moments of param, named <param>/adam_m and <param>/adam_v."""
        param_name = _variable_name(param.name)
        return tuple(tf.get_variable(param_name + suffix, shape=param.shape.as_list(),
                                     dtype=tf.float32, trainable=False,
                                     initializer=tf.zeros_initializer())
                     for suffix in SLOT_SUFFIXES)

    def _updates(self, grad, param, param_name, m, v):
        """The assignments of one AdamW step for param and its slots."""
        if isinstance(grad, tf.IndexedSlices):  # embedding lookups give sparse grads
            grad = tf.convert_to_tensor(grad)
        next_m = self.beta_1 * m + (1.0 - self.beta_1) * grad
        next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
        update = next_m / (tf.sqrt(next_v) + self.epsilon)
        if self.weight_decay_rate > 0 and self._use_weight_decay(param_name):
            update += self.weight_decay_rate * param
        next_param = param - self._lr_for(param_name) * update
        return [param.assign(self._keep(next_param, param)), m.assign(self._keep(next_m, m)),
                v.assign(self._keep(next_v, v))]

    def _keep(self, new, old):
        """new, or old where the step is skipped (apply_gradients' should_apply)."""
        if self._should_apply is None:
            return new
        return tf.where(self._should_apply, new, old)

    def _use_weight_decay(self, param_name):
        return not any(re.search(r, param_name) for r in self.exclude_from_weight_decay)

    def _lr_for(self, param_name):
        """The variable's rate; with layer-wise decay, a variable of no known depth is an
        error (the official optimizer raises it rather than train it at the full rate)."""
        if not self.lr_multipliers:
            return self.learning_rate
        for fragment, multiplier in self.lr_multipliers.items():
            if fragment in param_name:
                return self.learning_rate * multiplier
        raise ValueError(
            "No learning rate specified for variable %s: layer-wise lr decay knows the "
            "scopes %s; put the variable under one of them or set layerwise_lr_decay to 0"
            % (param_name, ", ".join(self.lr_multipliers)))

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
