"""Benchmark of one fine-tuning step: classification (seq 128) and QA (seq 512), for the
variants fp32, XLA, bf16 and XLA+bf16.

Each (task, variant) runs in a fresh subprocess that builds the fine-tuning training
graph of finetune/model_fn.py (the encoder, the task head of chnsenticorp or cmrc2018, AdamW with layer-wise lr
decay; use_xla / mixed_precision as the hparams set them) on synthetic full-length
batches held in memory, runs --warmup-steps steps (the first compiles with XLA) and
times --steps steps one by one. The encoder starts from its random initialisation: the
speed of a step does not depend on the weights.

Printed per task and variant: sequences/s (batch / median step time; the mean-based
figure next to it), median wall and CPU time of a step, peak RSS of the subprocess, model GFLOP/s
(analytic matmul FLOPs of encoder + head, x3 for a training step; see
bench/step_common.py) and the loss at the first and last step; then
`<task> <variant>/fp32 sequences/s: 1.23x` lines.

Usage (from the repo root):
  .venv/bin/python bench/finetune_step.py [--model-size small] [--batch-size 16] \\
      [--tasks classification,qa] [--steps 30] [--warmup-steps 3] \\
      [--variants fp32,xla,bf16,xla+bf16] [--hidden-acts gelu,gelu_new] [--rounds 2]
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TF loads: no C++ start-up chatter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import step_common  # noqa: E402
from util.machine import machine_description  # noqa: E402

# bench task -> (task whose head is used, default sequence length)
TASKS = {"classification": ("chnsenticorp", 128), "qa": ("cmrc2018", 512)}


def build_config(args, task, variant, data_dir):
    import configure_finetuning
    use_xla, mixed_precision = step_common.parse_variant(variant)
    if step_common.parse_training_parts(variant) != ("adamw", 1):
        raise SystemExit("variant %r: lamb and accum<k> are bench/pretrain_step.py's" % variant)
    task_name, _ = TASKS[task]
    return configure_finetuning.FinetuningConfig(
        "bench", data_dir, model_size=args.model_size, task_names=[task_name],
        max_seq_length=seq_length(args, task), train_batch_size=args.batch_size,
        vocab_file=step_common.SAMPLE_VOCAB, use_xla=use_xla,
        mixed_precision=mixed_precision,
        model_hparam_overrides=step_common.act_overrides(variant))


def seq_length(args, task):
    return args.qa_seq_length if task == "qa" else args.classification_seq_length


def finetuning_flops(config, task):
    """Matmul FLOPs of one training step (3 x forward): encoder + task head."""
    from model.configs import discriminator_config
    bert_config = discriminator_config(config)
    batch, length = config.train_batch_size, config.max_seq_length
    forward = step_common.encoder_forward_flops(bert_config, batch, length)
    if task == "qa":  # start/end logits for every token
        forward += 2 * batch * length * bert_config.hidden_size * 2
    else:  # [CLS] -> 2 labels
        forward += 2 * batch * bert_config.hidden_size * 2
    return 3 * forward


def synthetic_features(config, task_obj, special_ids):
    """{feature name: [NUM_BATCHES, ...] int32} for every spec of the task."""
    import numpy as np
    rng = np.random.default_rng(1)
    ids, mask, segments = step_common.synthetic_ids(
        rng, config.train_batch_size, config.max_seq_length, config.vocab_size,
        special_ids["[CLS]"], special_ids["[SEP]"])
    arrays = {"input_ids": ids, "input_mask": mask, "segment_ids": segments}
    scalar_shape = (step_common.NUM_BATCHES, config.train_batch_size)
    for spec in task_obj.feature_specs():
        if spec.name in arrays:
            continue
        if spec.name in ("start_positions", "end_positions"):  # answers in the context
            arrays[spec.name] = rng.integers(config.max_seq_length // 2 + 1,
                                             config.max_seq_length - 1, size=scalar_shape,
                                             dtype=np.int32)
        elif spec.name == "label_ids":
            arrays[spec.name] = rng.integers(0, len(task_obj.label_list), size=scalar_shape,
                                             dtype=np.int32)
        else:  # ids the head does not read (eid, feature_id)
            arrays[spec.name] = np.zeros(scalar_shape + tuple(spec.shape), np.int32)
    return arrays


def run_variant(args, task, variant):
    """In the child: build, warm up, time; print the RESULT line."""

    from finetune import task_builder
    from finetune.model_fn import model_fn_builder
    from model import precision, tokenization
    from model.configs import discriminator_config
    from util.training_utils import quiet_tensorflow

    quiet_tensorflow()
    # The data dir only names paths in the config: nothing is read or written there.
    config = build_config(args, task, variant, tempfile.gettempdir())
    precision.check_supported(config.mixed_precision, False, variant)
    tokenizer = tokenization.build_tokenizer(vocab_file=config.vocab_file,
                                             do_lower_case=config.do_lower_case)
    task_obj = task_builder.get_task(config, config.task_names[0], tokenizer)
    arrays = synthetic_features(config, task_obj, tokenizer.vocab)
    model_fn = model_fn_builder(
        config, [task_obj], discriminator_config(config), None, num_train_steps=1000000)
    step_common.time_model_fn(model_fn, arrays, precision.session_config(config.use_xla),
                              args.warmup_steps, args.steps)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    step_common.add_step_args(parser)
    parser.add_argument("--tasks", default="classification,qa",
                        help="comma-separated: classification, qa")
    parser.add_argument("--classification-seq-length", type=int, default=128)
    parser.add_argument("--qa-seq-length", type=int, default=512)
    parser.add_argument("--run-task", help=argparse.SUPPRESS)  # the child's task
    args = parser.parse_args(argv)
    step_common.check_step_args(parser, args)
    unknown = [t for t in args.tasks.split(",") if t not in TASKS]
    if unknown:
        parser.error("unknown task(s) %s: expected classification, qa" % ", ".join(unknown))
    return args


def child_args(args, task, variant):
    return ["--model-size", args.model_size, "--batch-size", str(args.batch_size),
            "--classification-seq-length", str(args.classification_seq_length),
            "--qa-seq-length", str(args.qa_seq_length), "--steps", str(args.steps),
            "--warmup-steps", str(args.warmup_steps), "--run-task", task,
            "--run-variant", variant]


def main(argv=None):
    args = parse_args(argv)
    if args.run_variant:
        run_variant(args, args.run_task, args.run_variant)
        return 0
    print("fine-tuning step: model %s, batch %d, hidden_act %s, %d warm-up + %d timed steps "
          "per variant and round, %d interleaved rounds"
          % (args.model_size, args.batch_size, args.hidden_acts, args.warmup_steps, args.steps,
             args.rounds))
    print("machine: %s" % machine_description(), flush=True)
    failed = False
    for task in args.tasks.split(","):
        config = build_config(args, task, "fp32", tempfile.gettempdir())
        flops = finetuning_flops(config, task)
        rows = step_common.run_variants(
            os.path.abspath(__file__), step_common.run_labels(args),
            lambda variant, task=task: child_args(args, task, variant), args.rounds)
        for _, result in rows:
            if "error" not in result:
                step_common.summarise(result, args.batch_size, flops)
        print("\n%s (%s head), seq %d: %.1f GFLOP per step (analytic)" % (
            task, TASKS[task][0], config.max_seq_length, flops / 1e9))
        step_common.print_table(rows)
        step_common.print_ratios(rows, prefix=task + " ")
        failed = failed or any("error" in r for _, r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
