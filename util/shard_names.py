"""Names of the pre-training tfrecord shards, the builder's output and pre-training's input
(no TensorFlow here: the builder's job processes import this)."""

TRAINING_PREFIX = "pretrain_data.tfrecord"  # pretrain_data.tfrecord-<i>-of-<n>
# The examples build_pretraining_dataset.py --eval-share holds out (one shard per job),
# never trained on: what do_eval reads by default when they are there.
EVAL_PREFIX = "pretrain_eval.tfrecord"
