"""Data-parallel training with tf.distribute (GPUs or several hosts).

`distribution` hparam: "none" (one device, the default), "mirrored" (all devices of this
machine, one replica each, gradients all-reduced) or "multi_worker_mirrored" (one process
per host, cluster from TF_CONFIG, collective all-reduce between hosts).

train_batch_size stays the GLOBAL batch: each replica gets train_batch_size / replicas
sequences. The objectives normalise their losses by global counts (`cross_replica_sum`),
so the replicas' losses add up to the one-device loss of the whole batch and the summed
gradients are exactly its gradients.
"""

import json
import os

import tensorflow.compat.v1 as tf

from util.errors import InputError
from util.hparams import parse_json

DISTRIBUTIONS = ("none", "mirrored", "multi_worker_mirrored")
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def check_hparams(config, source):
    """distribution / num_gpus / mirrored_devices against each other and use_tpu."""
    if config.distribution not in DISTRIBUTIONS:
        raise InputError("%s: distribution must be one of %s, got %r"
                         % (source, ", ".join('"%s"' % d for d in DISTRIBUTIONS),
                            config.distribution))
    if config.use_tpu and config.distribution != "none":
        raise InputError("%s: use_tpu runs on TPUEstimator, which shards over TPU cores by "
                         "itself (num_tpu_cores): set \"distribution\": \"none\" with use_tpu, "
                         "or use_tpu false to train on GPUs/hosts with distribution %r"
                         % (source, config.distribution))
    if config.num_gpus < 0:
        raise InputError("%s: num_gpus must be >= 0 (0 = every visible GPU), got %d"
                         % (source, config.num_gpus))
    if config.mirrored_devices and config.distribution != "mirrored":
        raise InputError("%s: mirrored_devices is for \"distribution\": \"mirrored\", "
                         "got distribution %r" % (source, config.distribution))


def read_tf_config():
    """The TF_CONFIG environment variable, checked: (cluster dict, task type, task index)."""
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        raise InputError("distribution \"multi_worker_mirrored\" needs the TF_CONFIG "
                         "environment variable on every host, e.g. TF_CONFIG='%s' (index 1 "
                         "on the second host)" % TF_CONFIG_EXAMPLE)
    spec = parse_json(text, "TF_CONFIG")
    if not isinstance(spec, dict):
        raise InputError("TF_CONFIG: expected a JSON object like %s" % TF_CONFIG_EXAMPLE)
    cluster, task = spec.get("cluster"), spec.get("task")
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise InputError("TF_CONFIG: \"cluster\" must map \"worker\" (and optionally "
                         "\"chief\") to lists of host:port, e.g. %s" % TF_CONFIG_EXAMPLE)
    for job, addresses in cluster.items():
        if job not in ("chief", "worker"):
            raise InputError("TF_CONFIG: cluster job %r is not supported here (only \"chief\" "
                             "and \"worker\": every host trains; run do_eval afterwards)" % job)
        if not isinstance(addresses, list) or not all(
                isinstance(a, str) and ":" in a for a in addresses):
            raise InputError("TF_CONFIG: cluster[%r] must be a list of \"host:port\" strings, "
                             "got %r" % (job, addresses))
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise InputError("TF_CONFIG: \"task\" must name this host's job (one of %s) and "
                         "index, e.g. {\"type\": \"worker\", \"index\": 0}; got %r"
                         % (", ".join(sorted(cluster)), task))
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or \
            not 0 <= index < len(cluster[task["type"]]):
        raise InputError("TF_CONFIG: task index must be an integer from 0 to %d (the %s list "
                         "has %d hosts), got %r" % (len(cluster[task["type"]]) - 1,
                                                    task["type"], len(cluster[task["type"]]),
                                                    index))
    return cluster, task["type"], index


def is_chief(config):
    """Whether this process writes the model dir: always, except on the non-chief hosts of a
    multi-worker cluster (the chief is the "chief" task, else worker 0)."""
    if config.distribution != "multi_worker_mirrored":
        return True
    cluster, task_type, index = read_tf_config()
    return task_type == "chief" or ("chief" not in cluster and index == 0)


def mirrored_devices(config):
    """The device list for MirroredStrategy: mirrored_devices, else num_gpus GPUs (0 = all
    visible), or None (every visible GPU, or the CPU if there is none)."""
    if config.mirrored_devices:
        return list(config.mirrored_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if config.num_gpus > len(gpus):
        raise InputError("num_gpus is %d but %d GPUs are visible (%s); set num_gpus to at most "
                         "%d, or 0 for all of them" % (config.num_gpus, len(gpus),
                                                       ", ".join(g.name for g in gpus) or "none",
                                                       len(gpus)))
    if config.num_gpus:
        return [g.name for g in gpus[:config.num_gpus]]
    return None


def build_strategy(config):
    """The tf.distribute strategy for the hparams, or None for "none"."""
    if config.distribution == "none":
        return None
    if config.distribution == "mirrored":
        devices = mirrored_devices(config)
        cross_device_ops = None  # GPUs: TF's choice (NCCL)
        if devices and not any("GPU" in d.upper() for d in devices):
            # Several CPU devices: TF's default all-reduce deadlocks at the first step
            # (seen with TF 2.15 on logical CPUs); summing on one device works.
            cross_device_ops = tf.distribute.ReductionToOneDevice()
        try:
            return tf.distribute.MirroredStrategy(devices=devices,
                                                  cross_device_ops=cross_device_ops)
        except (ValueError, RuntimeError) as e:  # e.g. a device name that does not exist
            raise InputError("mirrored_devices %s: %s" % (config.mirrored_devices, e))
    read_tf_config()  # clear errors before TF reads it
    # The graph-mode (v1) strategy, built before anything else starts TF's runtime: it
    # reads the cluster from TF_CONFIG and starts this host's server, which the training
    # loop's sessions connect to (util/training_loop.py).
    return tf.distribute.experimental.MultiWorkerMirroredStrategy()


def check_batch_sizes(strategy, sizes):
    """Every global batch size must split evenly over the replicas. sizes: {hparam: size}."""
    replicas = strategy.num_replicas_in_sync
    for key, size in sizes.items():
        if size % replicas:
            raise InputError("%s %d does not split over the %d replicas of the distribution: "
                             "use a multiple of %d (it is the global batch; each replica takes "
                             "%s / %d)" % (key, size, replicas, replicas, key, replicas))


def micro_batch_size(config):
    """Sequences per session run of training: train_batch_size (the batch of one update)
    over gradient_accumulation_steps."""
    return config.train_batch_size // config.gradient_accumulation_steps


def training_batch_sizes(config):
    """{name: global size} of the training batch each session run takes, for
    check_batch_sizes: the update's batch, or with accumulation its micro-batch."""
    if config.gradient_accumulation_steps == 1:
        return {"train_batch_size": config.train_batch_size}
    return {"train_batch_size / gradient_accumulation_steps": micro_batch_size(config)}


def describe_batch_split(config, strategy):
    """How an update's batch is made, for the start line: "" on one device without
    accumulation, else e.g. " (4 replicas x 16 sequences x 4 micro-batches)"."""
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    k = config.gradient_accumulation_steps
    if replicas == 1 and k == 1:
        return ""
    parts = ["%d replica%s" % (replicas, "s" if replicas > 1 else ""),
             "%d sequences" % (micro_batch_size(config) // replicas)]
    if k > 1:
        parts.append("%d micro-batches" % k)
    return " (%s)" % " x ".join(parts)


def build_checked_strategy(config, batch_sizes):
    """build_strategy, then check_batch_sizes(batch_sizes) and a one-line report of the
    replicas; None (and no output) for "none". batch_sizes: {hparam: global batch}."""
    strategy = build_strategy(config)
    if strategy is not None:
        check_batch_sizes(strategy, batch_sizes)
        print("distribution %s: %s, %d sequences per replica per %s" % (
            config.distribution, describe(strategy),
            micro_batch_size(config) // strategy.num_replicas_in_sync,
            "micro-batch" if config.gradient_accumulation_steps > 1 else "step"), flush=True)
    return strategy


def replica_batch_size(global_batch_size, input_context):
    """Per-replica batch for an input_fn: the global batch over the replicas in sync."""
    if input_context is None:
        return global_batch_size
    return input_context.get_per_replica_batch_size(global_batch_size)


def batches_per_replica_step(input_context):
    """How many batches one step takes from an input pipeline: one per replica it feeds
    (MirroredStrategy hands consecutive batches to the replicas)."""
    if input_context is None:
        return 1
    return input_context.num_replicas_in_sync // input_context.num_input_pipelines


def shard_for_input_context(dataset, input_context):
    """Each host's input pipeline takes every n-th example of the (identically shuffled)
    stream, so the hosts together see each global batch once."""
    if input_context is None or input_context.num_input_pipelines == 1:
        return dataset
    return dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)


def _multi_replica_context():
    ctx = tf.distribute.get_replica_context()
    return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


def cross_replica_sum(value):
    """Sum of `value` (a tensor or list of tensors) over all replicas when called inside
    a multi-replica model_fn; `value` itself otherwise (one device, TPUEstimator)."""
    ctx = _multi_replica_context()
    if ctx is None:
        return value
    flat = tf.nest.flatten(value)

    def batch_sum(strategy, *per_replica):  # cross-replica context: one batched reduction
        return strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.SUM,
                                                 [(v, v) for v in per_replica])
    # Not ReplicaContext.all_reduce: its custom gradient looks the model's variables up by
    # name in graph mode and fails on the replicas' copies. No gradient flows through here.
    summed = ctx.merge_call(batch_sum, args=tuple(flat))
    return tf.nest.pack_sequence_as(value, list(summed))


def is_first_replica():
    """False in the model_fn copies of replicas 1..N-1 (e.g. to write summaries once)."""
    ctx = _multi_replica_context()
    if ctx is None:
        return True
    return tf.get_static_value(ctx.replica_id_in_sync_group) in (0, None)


def describe(strategy):
    if strategy is None:
        return "one device"
    devices = getattr(strategy.extended, "worker_devices", ())
    return "%d replicas (%s)" % (strategy.num_replicas_in_sync, ", ".join(devices))


def tf_config_json(worker_addresses, index):
    """A TF_CONFIG value for worker `index` of a cluster of workers (used by the tests)."""
    return json.dumps({"cluster": {"worker": list(worker_addresses)},
                       "task": {"type": "worker", "index": index}})
