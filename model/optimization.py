"""AdamW (or LAMB) with warm-up + polynomial decay, global-norm clipping, layer-wise lr decay.

Behaviour of the official BERT/ELECTRA optimizer, kept exactly: no bias correction,
decoupled weight decay added to the Adam update (not to the loss), no decay on
LayerNorm and bias parameters, slots stored as `<param>/adam_m` and `<param>/adam_v`
so checkpoints interoperate with the official code. float16 training adds a dynamic loss
scale (DynamicLossScale), kept out of checkpoints.

LAMB (`optimizer: "lamb"`, for large-batch pre-training as in BERT/ALBERT/NVIDIA's ELECTRA)
is the same AdamW update scaled per variable by the trust ratio ||w|| / ||update||; its
slots have the same names, so a checkpoint does not say which optimizer wrote it.
"""

import collections
import re

import tensorflow.compat.v1 as tf

from util import distribute
from util.errors import InputError

# Adam's two slots of a parameter are checkpointed as <param><suffix> (the official names).
SLOT_SUFFIXES = ("/adam_m", "/adam_v")
OPTIMIZERS = ("adamw", "lamb")
# Neither weight decay nor (LAMB) the trust ratio applies to these (official AdamW's list).
EXCLUDE_FROM_WEIGHT_DECAY = ["LayerNorm", "layer_norm", "bias"]


def check_hparams(config, source):
    """optimizer and gradient_accumulation_steps, against the batch size and the TPU path."""
    if config.optimizer not in OPTIMIZERS:
        raise InputError("%s: optimizer must be one of %s, got %r"
                         % (source, ", ".join('"%s"' % o for o in OPTIMIZERS), config.optimizer))
    k = config.gradient_accumulation_steps
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError("%s: gradient_accumulation_steps must be an integer >= 1, got %r"
                         % (source, k))
    if config.train_batch_size % k:
        raise InputError(
            "%s: train_batch_size %d does not split into %d micro-batches: use a multiple of %d "
            "(train_batch_size is the batch of one update; each micro-batch takes "
            "train_batch_size / gradient_accumulation_steps)"
            % (source, config.train_batch_size, k, k))
    if k > 1 and (config.use_tpu or config.use_tpu_estimator):
        raise InputError(
            "%s: gradient_accumulation_steps %d needs the CPU/GPU path: TPUEstimator runs "
            "iterations_per_loop steps per host call and accumulates nothing. On a TPU set it "
            "to 1 and reach the batch with more cores (num_tpu_cores, a pod slice)" % (source, k))


def learning_rate_schedule(learning_rate, num_train_steps, num_warmup_steps=0,
                           warmup_proportion=0.0, lr_decay_power=1.0, warmup_from=0):
    """Linear warm-up to `learning_rate`, then polynomial decay to 0 at num_train_steps.
    warmup_from: the step the warm-up starts at (a run continuing another's schedule from
    step N warms up again from N: its Adam moments start at zero, and without bias
    correction its first updates would be several times their size)."""
    global_step = tf.train.get_or_create_global_step()
    step = tf.cast(global_step, tf.float32)
    decayed = tf.train.polynomial_decay(learning_rate, global_step, num_train_steps,
                                        end_learning_rate=0.0, power=lr_decay_power,
                                        cycle=False)
    warmup_steps = max(num_train_steps * warmup_proportion, num_warmup_steps)
    if warmup_steps > 0:
        decayed *= tf.minimum(1.0, (step - float(warmup_from)) / float(warmup_steps))
    return decayed


def layerwise_lr_multipliers(n_layers, layer_decay):
    """Ordered {name fragment: lr multiplier}: lower layers learn more slowly.

    Depth 0 is the embeddings, depth i+1 encoder layer i, depth n_layers+2 the task head
    (the official keys); multiplier = layer_decay ** (n_layers + 2 - depth). The pooler
    of BERT-family encoders (model_type "bert"; the official ELECTRA encoder has none)
    sits between the top layer and the head, at depth n_layers+1. The pre-trained
    discriminator head, the classifier of rtd-prompt fine-tuning (not official), is a
    head: depth n_layers+2. A variable matching no fragment is an error
    (AdamWeightDecayOptimizer._lr_for), as in the official optimizer.
    """
    depths = collections.OrderedDict([
        ("/embeddings/", 0), ("/embeddings_project/", 0), ("task_specific/", n_layers + 2),
        ("/pooler/", n_layers + 1), ("discriminator_predictions/", n_layers + 2)])
    for layer in range(n_layers):
        depths["encoder/layer_%d/" % layer] = layer + 1
    return collections.OrderedDict(
        (key, layer_decay ** (n_layers + 2 - depth)) for key, depth in depths.items())


def create_optimizer(loss, learning_rate, num_train_steps, weight_decay_rate=0.0,
                     use_tpu=False, num_warmup_steps=0, warmup_proportion=0.0,
                     lr_decay_power=1.0, layerwise_lr_decay_power=-1,
                     n_transformer_layers=None, clip_norm=1.0, variables=None,
                     loss_scaling=False, optimizer="adamw", accumulation_steps=1,
                     loss_terms=None, warmup_from=0):
    """Returns (train_op, learning_rate tensor). train_op also increments global_step.

    optimizer: "adamw" (the official one) or "lamb" (AdamW's update times LAMB's
    layer-wise trust ratio).

    loss_scaling: a DynamicLossScale (for float16 compute): a step whose gradients are
    not finite leaves the weights and slots alone (global_step still advances).

    accumulation_steps k > 1: each run of train_op takes one micro-batch; every k-th
    applies one update from the k micro-batches' gradients (GradientAccumulator), the
    update one step on their union would make. global_step, and so the learning-rate
    schedule and num_train_steps, count updates. loss_terms: [(weight, numerator,
    denominator or None)] with loss = sum of weight * numerator / (denominator + 1e-6)
    (see GradientAccumulator); None: [(1, loss, None)], a loss that is a sum over examples.

    Under a tf.distribute strategy (a model_fn replica), `loss` must be this replica's
    share of the global loss (the replicas' losses add up to it, as the objectives here
    compute it): the gradients are summed over the replicas BEFORE global-norm clipping,
    so every replica clips and applies the same, global, gradient.
    """
    global_step = tf.train.get_or_create_global_step()
    lr = learning_rate_schedule(learning_rate, num_train_steps, num_warmup_steps,
                                warmup_proportion, lr_decay_power, warmup_from)
    multipliers = None
    if layerwise_lr_decay_power > 0:
        multipliers = layerwise_lr_multipliers(n_transformer_layers, layerwise_lr_decay_power)
    if optimizer not in OPTIMIZERS:
        raise ValueError("optimizer must be one of %s, not %r" % (OPTIMIZERS, optimizer))
    optimizer_class = LambOptimizer if optimizer == "lamb" else AdamWeightDecayOptimizer
    optimizer = optimizer_class(
        learning_rate=lr, weight_decay_rate=weight_decay_rate, beta_1=0.9, beta_2=0.999,
        epsilon=1e-6, exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
        lr_multipliers=multipliers)
    if use_tpu:
        optimizer = tf.tpu.CrossShardOptimizer(optimizer)
    tvars = variables if variables is not None else tf.trainable_variables()
    loss_scale = DynamicLossScale() if loss_scaling else None
    accumulator = None
    if accumulation_steps > 1:
        accumulator = GradientAccumulator(accumulation_steps, tvars, loss_scale)
        grads, all_finite, norm = accumulator.gradients(loss_terms or [(1.0, loss, None)])
    elif loss_scale is None:
        grads, all_finite = _sum_over_replicas(tf.gradients(loss, tvars)), None
    else:  # summed before the check, so that every replica takes the same decision
        grads = _sum_over_replicas(tf.gradients(loss * loss_scale.value, tvars))
        grads, all_finite = loss_scale.unscale(grads)
    grads, _ = tf.clip_by_global_norm(
        grads, clip_norm=clip_norm, use_norm=None if accumulator is None else norm)
    # (CrossShardOptimizer, on a TPU, takes no should_apply; a TPU has neither fp16 nor
    # accumulation, so it is only passed when there is something to skip)
    skip = {} if all_finite is None else {"should_apply": all_finite}
    train_op = optimizer.apply_gradients(zip(grads, tvars), global_step=global_step, **skip)
    if loss_scale is not None:
        at = None if accumulator is None else accumulator.boundary
        train_op = tf.group(train_op, loss_scale.update(all_finite, at=at))
    # AdamWeightDecayOptimizer does not touch global_step itself (as in BERT). Under a
    # strategy global_step is an ONLY_FIRST_REPLICA variable: one increment per step.
    # After the update, so that everything this step computes (lr, per-example noise)
    # reads the step's own value; on several replicas the order would otherwise vary.
    with tf.control_dependencies([train_op]):
        increment = 1 if accumulator is None else tf.cast(accumulator.boundary, tf.int64)
        after = [global_step.assign(global_step + increment)]
        if accumulator is not None:
            after.append(accumulator.advance())
        train_op = tf.group(train_op, after)
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
        self.good_steps = tf.get_variable("loss_scale_good_steps", shape=[], dtype=tf.int32,
                                          initializer=tf.zeros_initializer(), **options)
        self.value = tf.identity(self.scale.read_value())  # one read: scale, then unscale

    def unscale(self, grads):
        """(grads / scale, scalar bool: every gradient finite). A sparse gradient stays
        sparse, so that clipping takes the norm it takes without loss scaling."""
        grads = [None if g is None else _divide(g, self.value) for g in grads]
        all_finite = tf.reduce_all([
            tf.reduce_all(tf.is_finite(g.values if isinstance(g, tf.IndexedSlices) else g))
            for g in grads if g is not None])
        return grads, all_finite

    def update(self, all_finite, at=None):
        """The op adjusting the scale after a step (with gradient accumulation: only where
        the scalar bool `at`, an update, holds)."""
        grow = tf.logical_and(all_finite, self.good_steps + 1 >= self.growth_interval)
        scale = tf.where(all_finite, tf.where(grow, self.value * 2.0, self.value),
                         tf.maximum(self.value / 2.0, 1.0))
        good_steps = tf.where(tf.logical_and(all_finite, tf.logical_not(grow)),
                              self.good_steps + 1, 0)
        if at is not None:
            scale = tf.where(at, scale, self.value)
            good_steps = tf.where(at, good_steps, self.good_steps)
        return tf.group(self.scale.assign(scale), self.good_steps.assign(good_steps))


class GradientAccumulator(object):
    """k micro-batches, one update: the update one step on the k micro-batches' union makes.

    A loss is a sum of terms weight * numerator / (denominator + 1e-6): a fine-tuning loss
    is one term without denominator (a sum over examples, or that sum over the global batch
    size); the ELECTRA loss has two, the MLM loss over the masked positions and the
    discriminator's over the real tokens, each divided by a count of the whole batch. So
    the accumulator keeps, per term, the sum of the numerators' gradients and of the
    denominators over the k micro-batches, and the update's gradient is
    sum_t weight_t * (sum_j grad numerator_tj) / (sum_j denominator_tj + 1e-6): exactly the
    large batch's, whatever each micro-batch's count. A term's gradient is taken on its own;
    ELECTRA's two terms reach disjoint variables but the embeddings, so this costs no
    second backward pass there (LERT's terms share the encoder: one pass per term).

    Each micro-step's gradients are summed over the replicas first (as without
    accumulation), so the accumulators hold the same values on every replica. They, the
    denominator sums and the micro-step counter are local variables: never in a
    checkpoint, zero when a session starts. Checkpoints are written only after an update
    (global_step changes only there), so a run killed mid-accumulation resumes at the last
    update, losing at most the partial accumulation. With loss scaling (float16) each
    micro-step's gradients are unscaled as they come, and a window with any non-finite
    gradient skips its update.
    """

    def __init__(self, steps, variables, loss_scale=None):
        self.steps = steps
        self._variables = variables
        self._loss_scale = loss_scale
        options = dict(trainable=False, collections=[tf.GraphKeys.LOCAL_VARIABLES],
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self._options = options
        with tf.variable_scope("gradient_accumulation"):
            # (dtypes explicit: a mirrored replica's get_variable checks them against the
            # first replica's variable, and would take a Python initializer as float32)
            self._micro_step = tf.get_variable("micro_step", shape=[], dtype=tf.int32,
                                               initializer=tf.zeros_initializer(), **options)
            self._finite = tf.get_variable("all_finite", shape=[], dtype=tf.bool,
                                           initializer=tf.ones_initializer(), **options)
        self._step = self._micro_step.read_value()  # read once: see advance()
        self.boundary = tf.equal(self._step + 1, steps)  # this run ends the window: update
        self._resets = []

    def _local(self, name, shape):
        with tf.variable_scope("gradient_accumulation"):
            return tf.get_variable(name, shape=shape, dtype=tf.float32,
                                   initializer=tf.zeros_initializer(), **self._options)

    def gradients(self, terms):
        """(the update's gradients, the window's all-finite flag, their global norm for
        clipping).

        The norm is the one tf.clip_by_global_norm takes on the large batch's gradients.
        A variable read only through gathers (an embedding table) has a sparse gradient
        there, whose norm counts each gathered row on its own (a token twice in the batch
        counts twice) and adds the terms within a row. So for such a variable the window
        sums, per pair of terms, the products of their gradients at the gathers' outputs
        (taken in the same backward pass)."""
        gathers = _gather_outputs(self._variables)  # {variable index: [gather outputs]}
        outputs = [y for i in sorted(gathers) for y in gathers[i]]
        combined = [None] * len(self._variables)
        sparse = [True] * len(self._variables)  # every term's gradient an IndexedSlices
        at_gathers, scales, finite = [], [], []
        for t, (weight, numerator, denominator) in enumerate(terms):
            scaled = numerator if self._loss_scale is None else numerator * self._loss_scale.value
            grads = tf.gradients(scaled, self._variables + outputs)
            grads, rows = _sum_over_replicas(grads[:len(self._variables)]), grads[len(
                self._variables):]
            if self._loss_scale is not None:
                grads, term_finite = self._loss_scale.unscale(grads)
                finite.append(term_finite)
                rows = [None if r is None else r / self._loss_scale.value for r in rows]
            at_gathers.append(dict(zip(outputs, rows)))
            if denominator is None:
                total = tf.constant(1.0)
            else:
                count = self._local("term_%d_count" % t, [])
                total_count = count.read_value() + tf.cast(denominator, tf.float32)
                self._resets.append((count, self._restart(total_count)))
                total = total_count + 1e-6
            scales.append(weight / total)
            for i, (grad, var) in enumerate(zip(grads, self._variables)):
                if grad is None:
                    continue
                sparse[i] = sparse[i] and isinstance(grad, tf.IndexedSlices)
                acc = self._local("term_%d/%s" % (t, _variable_name(var.name)),
                                  var.shape.as_list())
                summed = acc.read_value() + tf.convert_to_tensor(grad)
                self._resets.append((acc, self._restart(summed)))
                part = weight * summed / total
                combined[i] = part if combined[i] is None else combined[i] + part
        squares = []
        for i, grad in enumerate(combined):
            if grad is None:
                continue
            if not sparse[i]:
                squares.append(tf.reduce_sum(tf.square(grad)))
                continue
            if not gathers.get(i):
                raise ValueError("gradient accumulation: %s has a sparse gradient but no gather "
                                 "reads it; its clipping norm cannot be accumulated"
                                 % self._variables[i].name)
            for t in range(len(terms)):
                for s in range(t, len(terms)):
                    products = [tf.reduce_sum(at_gathers[t][y] * at_gathers[s][y])
                                for y in gathers[i]
                                if at_gathers[t][y] is not None and at_gathers[s][y] is not None]
                    if not products:
                        continue
                    pair = self._local("rows_%d/terms_%d_%d" % (i, t, s), [])
                    pair_sum = pair.read_value() + distribute.cross_replica_sum(
                        tf.add_n(products))
                    self._resets.append((pair, self._restart(pair_sum)))
                    squares.append((1.0 if s == t else 2.0) * scales[t] * scales[s] * pair_sum)
        norm = tf.sqrt(tf.add_n(squares))
        if self._loss_scale is None:
            return combined, self.boundary, norm
        window_finite = tf.logical_and(self._finite.read_value(), tf.reduce_all(finite))
        self._resets.append((self._finite, tf.logical_or(self.boundary, window_finite)))
        return combined, tf.logical_and(self.boundary, window_finite), norm

    def _restart(self, value):
        """value, or zeros after an update (the next window starts empty)."""
        return tf.where(self.boundary, tf.zeros_like(value), value)

    def advance(self):
        """The op ending a micro-step: store the sums, count on. Called under a control
        dependency on the update, so that these writes are made after it: under a strategy
        a write of one replica's value reaches every replica's copy, which another replica
        must have read first."""
        next_step = tf.where(self.boundary, 0, self._step + 1)
        writes = [variable.assign(value) for variable, value in self._resets]
        return tf.group(writes + [self._micro_step.assign(next_step)])


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
        next_param = param - self._lr_for(param_name) * self._scaled(update, param, param_name)
        return [param.assign(self._keep(next_param, param)), m.assign(self._keep(next_m, m)),
                v.assign(self._keep(next_v, v))]

    def _scaled(self, update, param, param_name):
        """The step direction as applied (AdamW: the update itself)."""
        del param, param_name
        return update

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


class LambOptimizer(AdamWeightDecayOptimizer):
    """LAMB: AdamW's update (no bias correction, decoupled weight decay) times a trust ratio
    ||w|| / ||update|| per variable, so every layer moves by a similar share of its norm
    whatever the batch size. The ratio is 1 where either norm is zero and for the variables
    excluded from weight decay (LayerNorm, biases), as in the LAMB of BERT/ALBERT."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("name", "LambOptimizer")
        super(LambOptimizer, self).__init__(*args, **kwargs)

    def _scaled(self, update, param, param_name):
        if not self._use_weight_decay(param_name):
            return update
        w_norm, u_norm = tf.norm(param), tf.norm(update)
        ratio = tf.where(w_norm > 0.0, tf.where(u_norm > 0.0, w_norm / u_norm, 1.0), 1.0)
        return ratio * update


def _divide(grad, value):
    """grad / value, an IndexedSlices kept as one."""
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values / value, grad.indices, grad.dense_shape)
    return grad / value


_READS = ("Identity", "ReadVariableOp", "Cast", "Enter")
_GATHERS = ("Gather", "GatherV2", "ResourceGather")


def _gather_outputs(variables):
    """{index in variables: [outputs of the gather ops that read it]}, following reads,
    identities and casts from the variable (each replica's copy under a strategy)."""
    strategy = tf.distribute.get_strategy()
    found = {}
    for i, var in enumerate(variables):
        frontier = [component.op for component in strategy.experimental_local_results(var)]
        seen, outputs = set(), []
        while frontier:
            op = frontier.pop()
            if op in seen:
                continue
            seen.add(op)
            for tensor in op.outputs:
                for consumer in tensor.consumers():
                    if consumer.type in _GATHERS and consumer.inputs[0] is tensor:
                        outputs.append(consumer.outputs[0])
                    elif consumer.type in _READS:
                        frontier.append(consumer)
        if outputs:
            found[i] = outputs
    return found


def _variable_name(tensor_name):
    """'electra/encoder/.../kernel:0' -> 'electra/encoder/.../kernel'."""
    match = re.match("^(.*):\\d+$", tensor_name)
    return match.group(1) if match else tensor_name
