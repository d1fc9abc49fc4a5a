"""Benchmark of one pre-training step: fp32 graph, XLA, bf16 and XLA+bf16.

For a model size (default ELECTRA-small: discriminator 12 x 256, generator 12 x 64),
sequence length (128) and batch (16), each variant runs in a fresh subprocess that
builds run_pretraining's training graph (PretrainingModel: masking, generator, sampling,
discriminator; AdamW with clipping; use_xla / mixed_precision as the hparams set them)
on synthetic full-length batches held in memory, so that input I/O plays no part. After
--warmup-steps steps (the first compiles with XLA) it times --steps steps one by one.

Printed per variant: sequences/s (batch / median step time; the mean-based figure next
to it), median wall and CPU time of a step, peak RSS of the subprocess, model GFLOP/s
(analytic matmul FLOPs of generator + discriminator + heads, x3 for a training step; see
bench/step_common.py), and the loss at the first and last step (a variant that trains
nothing would show). Then `<variant>/fp32 sequences/s: 1.23x` lines.

Usage (from the repo root):
  .venv/bin/python bench/pretrain_step.py [--model-size small] [--seq-length 128] \\
      [--batch-size 16] [--steps 30] [--warmup-steps 3] [--variants fp32,xla,bf16,xla+bf16] \\
      [--hidden-acts gelu,gelu_new] [--rounds 2]
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


def pretraining_flops(config):
    """Matmul FLOPs of one training step (3 x forward) for a PretrainingConfig: the
    generator (or BERT's full model), its MLM head at the masked positions, and for
    ELECTRA the discriminator and its head. Sampling and masking are not matmuls."""
    from model import configs
    disc = configs.discriminator_config(config)
    emb = disc.embedding_size or disc.hidden_size
    batch, length = config.train_batch_size, config.max_seq_length
    forward = step_common.encoder_forward_flops(disc, batch, length)
    mlm_width = disc.hidden_size
    if config.electra_objective:
        forward += 2 * batch * length * disc.hidden_size * (disc.hidden_size + 1)  # head
        if config.untied_generator:
            gen = configs.generator_config(config, disc)
            forward += step_common.encoder_forward_flops(gen, batch, length, emb)
            mlm_width = gen.hidden_size
        else:  # the discriminator's weights run a second time, as the generator
            forward += step_common.encoder_forward_flops(disc, batch, length)
    # MLM head: dense to E, then the tied [V, E] output table, at the masked positions.
    forward += 2 * batch * config.max_predictions_per_seq * (mlm_width * emb
                                                             + emb * disc.vocab_size)
    return 3 * forward


def build_config(args, variant, data_dir):
    import configure_pretraining
    use_xla, mixed_precision = step_common.parse_variant(variant)
    optimizer, accumulation = step_common.parse_training_parts(variant)
    return configure_pretraining.PretrainingConfig(
        "bench", data_dir, model_size=args.model_size, max_seq_length=args.seq_length,
        train_batch_size=args.batch_size, vocab_file=step_common.SAMPLE_VOCAB,
        num_train_steps=1000000, num_warmup_steps=100, seed=1,
        use_xla=use_xla, mixed_precision=mixed_precision, optimizer=optimizer,
        gradient_accumulation_steps=accumulation,
        model_hparam_overrides=step_common.act_overrides(variant))


def model_fn_and_batch(args, variant):
    """In a child: (config, the pre-training model_fn, a synthetic batch {name: array})."""
    import numpy as np

    import run_pretraining
    from model import precision
    from util import distribute
    from util.training_utils import quiet_tensorflow

    quiet_tensorflow()
    # The data dir only names paths in the config: nothing is read or written there.
    config = build_config(args, variant, tempfile.gettempdir())
    precision.check_supported(config.mixed_precision, False, variant)
    special_ids = run_pretraining.load_special_ids(config)
    ids, mask, segments = step_common.synthetic_ids(  # one session run's (micro-)batch
        np.random.default_rng(1), distribute.micro_batch_size(config), config.max_seq_length,
        config.vocab_size, special_ids["[CLS]"], special_ids["[SEP]"])
    return (config, run_pretraining.model_fn_builder(config, special_ids, None),
            {"input_ids": ids, "input_mask": mask, "segment_ids": segments})


def run_variant(args, variant):
    """In the child: build, warm up, time; print the RESULT line."""
    from model import precision

    config, model_fn, batch = model_fn_and_batch(args, variant)
    k = config.gradient_accumulation_steps
    extra = {"sequences_per_run": config.train_batch_size // k, "run_share": 1.0 / k}
    step_common.time_model_fn(model_fn, batch, precision.session_config(config.use_xla),
                              args.warmup_steps, args.steps, extra if k > 1 else None)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    step_common.add_step_args(parser)
    parser.add_argument("--seq-length", type=int, default=128)
    args = parser.parse_args(argv)
    step_common.check_step_args(parser, args)
    return args


def child_args(args, variant):
    return ["--model-size", args.model_size, "--seq-length", str(args.seq_length),
            "--batch-size", str(args.batch_size), "--steps", str(args.steps),
            "--warmup-steps", str(args.warmup_steps), "--run-variant", variant]


def main(argv=None):
    args = parse_args(argv)
    if args.run_variant:
        run_variant(args, args.run_variant)
        return 0
    variants = step_common.run_labels(args)
    config = build_config(args, "fp32", tempfile.gettempdir())
    flops = pretraining_flops(config)
    print("pre-training step: model %s, seq %d, batch %d, hidden_act %s, %d warm-up + %d "
          "timed steps per variant and round, %d interleaved rounds; %.1f GFLOP per step "
          "(analytic)" % (args.model_size, args.seq_length, args.batch_size,
                          args.hidden_acts, args.warmup_steps, args.steps, args.rounds,
                          flops / 1e9))
    print("machine: %s" % machine_description(), flush=True)
    rows = step_common.run_variants(os.path.abspath(__file__), variants,
                                    lambda variant: child_args(args, variant), args.rounds)
    for _, result in rows:
        if "error" not in result:
            step_common.summarise(result, args.batch_size, flops)
    print()
    step_common.print_table(rows)
    step_common.print_ratios(rows)
    return 1 if any("error" in r for _, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
