"""Speed options: mixed_precision (bf16; fp16's loss scaling) and use_xla.

bf16 and fp32 runs with the same seed draw the same random numbers: TF seeds each
random op from the graph seed and the number of random ops created before it, mixed
precision adds casts but no random op, and bf16 dropout draws float32 uniforms as fp32
dropout does (model/modeling.py dropout). So masking, generator samples and dropout masks
agree, and the loss trajectories differ only by bfloat16 rounding, which grows as training
goes on (measured on the tiny model, 100 steps of 8: at most 0.008 on the generator loss,
0.003 on the discriminator's, 0.0003 / 0.0002 between their means; with bf16 dropout
drawing its own numbers it was 0.028 / 0.006). The per-step tolerances below allow about
six times the measured differences.
"""

import io
import json
import math
import re
import shutil
from contextlib import redirect_stdout

import pytest
import tensorflow.compat.v1 as tf

import configure_finetuning
import configure_pretraining
import run_finetuning
import run_pretraining
from model import optimization
from model import precision
from pretrain import objective
from tests.conftest import SAMPLE_VOCAB
from tests.test_finetuning import make_task_data
from util import modes
from util.errors import InputError

PROGRESS = re.compile(r"^step (\d+)/\d+ \| loss ([\d.]+) \| gen ([\d.]+) \| disc ([\d.]+)")
TINY = {"model_size": "tiny", "save_graph_def": False,
        "max_seq_length": 128, "num_warmup_steps": 10,
        "learning_rate": 1e-3, "seed": 3, "train_batch_size": 8, "log_every_steps": 5}
STEPS = 60  # the measurements below were taken over 100 steps; differences grow with steps
GEN_TOL, DISC_TOL = 0.05, 0.015  # per logged step, absolute
GEN_MEAN_TOL, DISC_MEAN_TOL = 0.01, 0.003  # mean over the logged steps
# Fine-tuning cail2018 (3 steps) from one checkpoint, bf16 against fp32 (measured: at most
# 0.0004 on a step's loss, 0.002 on the dev loss)
FT_LOSS_TOL, FT_DEV_LOSS_TOL = 0.005, 0.01
SPECIAL_IDS = {"[MASK]": 103, "[CLS]": 101, "[SEP]": 102}  # sample_data/vocab.txt's


def tiny_features(seq_length=16):
    return {k: tf.ones([2, seq_length], tf.int32)
            for k in ("input_ids", "input_mask", "segment_ids")}


def pretrain(data_dir, model_name, **hparams):
    """Runs run_pretraining in-process; (exit status, {step: (loss, gen, disc)})."""
    out = io.StringIO()
    with redirect_stdout(out):
        status = run_pretraining.main(["--data-dir", str(data_dir), "--model-name",
                                       model_name, "--hparams", json.dumps(hparams)])
    rows = {int(m.group(1)): tuple(float(x) for x in m.groups()[1:])
            for m in map(PROGRESS.match, out.getvalue().splitlines()) if m}
    return status, rows, out.getvalue()


@pytest.fixture(scope="module")
def fp32_and_bf16(sample_data_dir):
    """The tiny model pre-trained for STEPS steps in fp32 and in bf16, same seed."""
    runs = {}
    for mode in ("none", "bf16"):
        status, rows, output = pretrain(sample_data_dir, "speed_" + mode, num_train_steps=STEPS,
                                        save_checkpoints_steps=STEPS, mixed_precision=mode,
                                        **TINY)
        assert status == 0, output
        runs[mode] = rows
    return sample_data_dir, runs


def test_bf16_pretraining_tracks_fp32_losses(fp32_and_bf16):
    _, runs = fp32_and_bf16
    fp32, bf16 = runs["none"], runs["bf16"]
    assert sorted(fp32) == sorted(bf16) == [1] + list(range(5, STEPS + 1, 5))
    for step in fp32:
        _, gen32, disc32 = fp32[step]
        _, gen16, disc16 = bf16[step]
        assert abs(gen16 - gen32) <= GEN_TOL and abs(disc16 - disc32) <= DISC_TOL, \
            (step, fp32[step], bf16[step])

    def mean(rows, i):
        return sum(r[i] for r in rows.values()) / len(rows)
    assert abs(mean(bf16, 1) - mean(fp32, 1)) <= GEN_MEAN_TOL
    assert abs(mean(bf16, 2) - mean(fp32, 2)) <= DISC_MEAN_TOL
    assert bf16[STEPS][1] < bf16[1][1] - 2.0  # and it learns: the MLM loss falls from ~10


def test_bf16_checkpoint_has_the_fp32_names_and_float32_dtypes(fp32_and_bf16):
    data_dir, _ = fp32_and_bf16
    readers = {mode: tf.train.load_checkpoint(tf.train.latest_checkpoint(
        str(data_dir / "models" / ("speed_" + mode)))) for mode in ("none", "bf16")}
    shapes = {mode: r.get_variable_to_shape_map() for mode, r in readers.items()}
    assert shapes["bf16"] == shapes["none"]
    dtypes = readers["bf16"].get_variable_to_dtype_map()
    assert dtypes.pop("global_step") == tf.int64
    assert set(dtypes.values()) == {tf.float32}
    assert "electra/encoder/layer_0/attention/self/query/kernel/adam_m" in dtypes


def test_bf16_graph_computes_the_encoder_in_bf16_and_the_rest_in_float32():
    """Matmuls of the encoder in bfloat16; LayerNorm, softmax, heads and loss float32."""
    config = configure_pretraining.PretrainingConfig(
        "m", "/nonexistent", model_size="tiny", max_seq_length=16, mixed_precision="bf16")
    with tf.Graph().as_default() as graph:
        model = objective.PretrainingModel(config, tiny_features(), True, SPECIAL_IDS)
        ops = graph.get_operations()
        variable_dtypes = {v.dtype.base_dtype for v in tf.global_variables()}

    def dtypes(op_type, scope):
        return {op.get_attr("T") for op in ops if op.type == op_type and scope in op.name}
    assert dtypes("MatMul", "electra/encoder/") == {tf.bfloat16}
    assert dtypes("BatchMatMulV2", "electra/encoder/") == {tf.bfloat16}
    assert dtypes("Softmax", "electra/encoder/") == {tf.float32}
    assert dtypes("Rsqrt", "LayerNorm") == {tf.float32}
    assert dtypes("MatMul", "discriminator_predictions/") == {tf.float32}
    assert model.total_loss.dtype == tf.float32
    assert variable_dtypes == {tf.float32}


def test_use_xla_compiles_the_step_and_gives_the_fp32_loss(sample_data_dir):
    # One layer each for discriminator and generator: XLA's compile time grows with them.
    one_layer = dict(TINY, num_train_steps=1, model_hparam_overrides={"num_hidden_layers": 1})
    first = {}
    for use_xla in (False, True):
        status, rows, output = pretrain(sample_data_dir, "speed_xla_%s" % use_xla,
                                        use_xla=use_xla, **one_layer)
        assert status == 0, output
        first[use_xla] = rows[1]
    assert first[True] == pytest.approx(first[False], rel=1e-4)
    # The runner marks the model, its gradients and the optimizer for XLA, and only
    # with use_xla (the progress line cannot show whether XLA compiled the step).
    for use_xla in (True, False):
        config = configure_pretraining.PretrainingConfig(
            "m", str(sample_data_dir), model_size="tiny", max_seq_length=16, use_xla=use_xla)
        with tf.Graph().as_default() as graph:
            model_fn = run_pretraining.model_fn_builder(config, SPECIAL_IDS, None)
            model_fn(tiny_features(), None, modes.TRAIN, {})
            marked = [op for op in graph.get_operations()
                      if "_XlaCompile" in op.node_def.attr and op.get_attr("_XlaCompile")]
        if use_xla:
            assert {"BatchMatMulV2", "Sqrt"} <= {op.type for op in marked}  # attention, Adam
            assert any("gradients/" in op.name for op in marked)
        else:
            assert not marked
    assert precision.session_config(True).graph_options.optimizer_options.global_jit_level \
        == tf.OptimizerOptions.ON_1
    assert precision.session_config(False) is None


def finetune_cail2018(data_dir, model_name, mixed_precision):
    """Fine-tunes cail2018 (3 steps) from D/models/<model_name>; (dev results, logged losses)."""
    out = io.StringIO()
    with redirect_stdout(out):
        status = run_finetuning.main([
            "--data-dir", str(data_dir), "--model-name", model_name, "--hparams",
            json.dumps({"model_size": "tiny", "task_names": ["cail2018"], "train_batch_size": 8,
                        "eval_batch_size": 16, "num_train_epochs": 1.0, "log_every_steps": 1,
                        "mixed_precision": mixed_precision})])
    assert status == 0, out.getvalue()
    results = json.loads((data_dir / "models" / model_name / "results" /
                          "cail2018_results.json").read_text())
    losses = [float(x) for x in re.findall(r"\| loss ([\d.]+) \|", out.getvalue())]
    return results["trials"][0]["results"]["dev"], losses


def test_bf16_finetuning_tracks_fp32_and_writes_metrics(fp32_and_bf16):
    """One checkpoint fine-tuned in bf16 and in fp32 with the same seed: the losses of every
    step and the dev metrics differ by bfloat16 rounding only."""
    data_dir, _ = fp32_and_bf16
    make_task_data("cail2018", data_dir / "finetuning_data" / "cail2018")
    models = data_dir / "models"
    shutil.copytree(models / "speed_bf16", models / "speed_bf16_copy",
                    ignore=shutil.ignore_patterns("finetuning_*", "results"))
    dev16, losses16 = finetune_cail2018(data_dir, "speed_bf16", "bf16")
    dev32, losses32 = finetune_cail2018(data_dir, "speed_bf16_copy", "none")
    assert set(dev16) == set(dev32) == {"accuracy", "macro_f1", "loss"}
    assert all(math.isfinite(value) for value in dev16.values()), dev16  # no NaN under bf16
    assert len(losses16) == len(losses32) == 3  # 24 examples, batch 8: a line per step
    assert losses16 == pytest.approx(losses32, abs=FT_LOSS_TOL), (losses16, losses32)
    assert dev16["loss"] == pytest.approx(dev32["loss"], abs=FT_DEV_LOSS_TOL), (dev16, dev32)
    # 24 dev examples: bf16 rounding may move one across the decision boundary
    assert abs(dev16["accuracy"] - dev32["accuracy"]) <= 100.0 / 24 + 1e-9, (dev16, dev32)


@pytest.mark.parametrize("config_class", [configure_pretraining.PretrainingConfig,
                                          configure_finetuning.FinetuningConfig])
def test_invalid_mixed_precision_names_the_choices(config_class):
    with pytest.raises(InputError) as err:
        config_class("m", "/d", mixed_precision="float16")
    message = str(err.value)
    assert "mixed_precision must be one of \"none\", \"bf16\", \"fp16\", got 'float16'" \
        in message
    assert "\"bf16\" is the CPU/TPU choice" in message


def test_fp16_without_a_gpu_points_to_bf16(sample_data_dir, capsys):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: fp16 is allowed")
    status, _, _ = pretrain(sample_data_dir, "speed_fp16", num_train_steps=1,
                            mixed_precision="fp16", **TINY)
    assert status == 2
    err = capsys.readouterr().err
    assert "mixed_precision \"fp16\" needs a GPU" in err and "\"bf16\", the CPU/TPU choice" in err
    assert not (sample_data_dir / "models" / "speed_fp16").exists()
    with pytest.raises(InputError, match="TPUs .* set \"mixed_precision\": \"bf16\""):
        precision.check_supported("fp16", True, "pre-training hparams")


def test_loss_scaling_skips_non_finite_steps_and_adapts_the_scale():
    """fp16's dynamic loss scale, driven in float32 with an injected inf gradient."""
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [])
        w = tf.get_variable("w", initializer=1.0)
        train_op, _ = optimization.create_optimizer(w * x, 0.1, 100, loss_scaling=True)
        m = [v for v in tf.global_variables() if v.op.name == "w/adam_m"][0]
        scale = [v for v in tf.local_variables() if v.op.name == "loss_scale"][0]
        assert not any("loss_scale" in v.op.name for v in tf.global_variables())  # unsaved
        step = tf.train.get_or_create_global_step()
        with tf.Session() as session:
            session.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
            assert session.run(scale) == 2.0 ** 15
            session.run(train_op, {x: float("inf")})
            assert session.run([w, m, scale, step]) == [1.0, 0.0, 2.0 ** 14, 1]
            session.run(train_op, {x: 0.5})
            w_value, m_value, scale_value = session.run([w, m, scale])
            assert w_value < 1.0 and m_value == pytest.approx(0.05) and scale_value == 2.0 ** 14

    # growth: the scale doubles after growth_interval finite steps in a row
    with tf.Graph().as_default():
        loss_scale = optimization.DynamicLossScale(initial_scale=4.0, growth_interval=2)
        finite = tf.placeholder(tf.bool, [])
        update = loss_scale.update(finite)
        with tf.Session() as session:
            session.run(tf.local_variables_initializer())
            seen = []
            for ok in (True, True, True, False, True):
                session.run(update, {finite: ok})
                seen.append(session.run(loss_scale.scale))
            assert seen == [4.0, 8.0, 8.0, 4.0, 4.0]


def test_step_benchmark_pools_interleaved_rounds_and_prints_ratios():
    """bench/pretrain_step.py on the tiny model: every variant runs in each round, the
    table reports the pooled steps, and the ratio line compares with fp32 (no timing is
    asserted: only that the numbers are consistent with each other and the losses with
    the objective's)."""
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, "bench/pretrain_step.py", "--model-size", "tiny", "--seq-length", "32",
         "--batch-size", "4", "--steps", "2", "--warmup-steps", "1", "--rounds", "2",
         "--variants", "fp32,fp32+accum2"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "2 timed steps per variant and round, 2 interleaved rounds" in out
    # variant, seq/s, mean seq/s, step ms, CPU ms, peak RSS MB, GFLOP/s, first/last loss
    rows = {m.group(1): [float(x) for x in m.groups()[1:]] for m in re.finditer(
        r"^(fp32|fp32\+accum2)" + r"\s+([\d.]+)" * 6 + r"\s+([\d.]+)/([\d.]+)$", out,
        re.M)}
    assert set(rows) == {"fp32", "fp32+accum2"}, out
    for name, (seq_per_s, _, step_ms, _, _, _, first_loss, _) in rows.items():
        # sequences/s is the batch (4) over the median step time, both printed rounded; a
        # step of accum2 is one session run of a micro-batch of 2
        batch = 2 if name == "fp32+accum2" else 4
        assert seq_per_s == pytest.approx(batch * 1000.0 / step_ms, rel=0.01), out
        # The loss of the first step, at the initial weights (std 0.02), is the objective's
        # at uniform predictions: ln V for the generator's softmax over the vocab, ln 2 for
        # each discriminator decision, times disc_weight 50 (measured: 0.6% below).
        vocab_size = len(SAMPLE_VOCAB.read_text(encoding="utf-8").rstrip("\n").split("\n"))
        assert first_loss == pytest.approx(math.log(vocab_size) + 50 * math.log(2), rel=0.02)
    # per sequence: accum2's 2 sequences per run against fp32's 4 per step
    ratio = float(re.search(r"^fp32\+accum2/fp32 sequences/s: ([\d.]+)x$", out,
                            re.M).group(1))
    assert abs(ratio - rows["fp32+accum2"][0] / rows["fp32"][0]) <= 0.01 + 0.01 * ratio


def test_run_variants_pools_steps_and_stops_retrying_a_failed_variant(monkeypatch):
    from bench import step_common
    calls = []

    def fake_child(script, args):
        calls.append(args[0])
        if args[0] == "bad":
            return {"error": "exit status 1"}
        n = len(calls)
        return {"step_times": [0.1 * n], "cpu_times": [0.2], "peak_rss_mb": 100.0 + n,
                "first_loss": 5.0, "last_loss": 5.0 - n}

    monkeypatch.setattr(step_common, "run_child", fake_child)
    rows = dict(step_common.run_variants("x.py", ["fp32", "bad"], lambda v: [v], rounds=3))
    assert calls == ["fp32", "bad", "fp32", "fp32"]  # interleaved; "bad" tried once
    assert rows["fp32"]["step_times"] == pytest.approx([0.1, 0.3, 0.4])
    assert rows["fp32"]["peak_rss_mb"] == 104.0 and rows["fp32"]["last_loss"] == 1.0
    assert "error" in rows["bad"]


def test_profile_step_splits_matmuls_from_the_rest():
    import subprocess
    import sys
    proc = subprocess.run(
        [sys.executable, "bench/profile_step.py", "--model-size", "tiny", "--seq-length", "32",
         "--batch-size", "4", "--steps", "1", "--warmup-steps", "1"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = [(m.group(1), float(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"^( {0,2}\S.*?)\s+([\d.]+)\s+([\d.]+)$", proc.stdout, re.M)]
    rows = {label.strip(): values for label, *values in table}
    matmul, rest, total = (rows["matmul (all kinds)"], rows["everything but matmul"],
                           rows["total"])
    # The op rows between the matmul row and "other ops" are the rest's biggest op types:
    # none is a matrix multiplication (op types naming MatMul or Einsum).
    ops = [label.strip() for label, *_ in table if label.startswith("  ")]
    assert ops[-1] == "other ops" and len(ops) > 1, proc.stdout
    assert not [op for op in ops if "MatMul" in op or "Einsum" in op], ops
    for i in range(2):  # fp32 and bf16 columns; printed rounded to 1 ms
        assert abs(matmul[i] + rest[i] - total[i]) <= 1.0
        assert abs(sum(rows[op][i] for op in ops) - rest[i]) <= 0.5 * (len(ops) + 1)
    # The Amdahl line, from the table's rows (each +-0.5 ms) and from its own figures
    line = re.search(r"^matmul share of fp32 kernel time (\d+)%; bf16 matmuls ([\d.]+)x "
                     r"faster; with the rest unchanged bf16 could be at most ([\d.]+)x fp32$",
                     proc.stdout, re.M)
    assert line, proc.stdout
    share, speedup, bound = float(line.group(1)) / 100, float(line.group(2)), \
        float(line.group(3))
    assert (matmul[0] - 0.5) / (total[0] + 0.5) - 0.005 <= share \
        <= (matmul[0] + 0.5) / (total[0] - 0.5) + 0.005
    assert (matmul[0] - 0.5) / (matmul[1] + 0.5) - 0.005 <= speedup \
        <= (matmul[0] + 0.5) / (matmul[1] - 0.5) + 0.005
    assert bound == pytest.approx(1 / ((1 - share) + share / speedup), abs=0.02)


def test_hidden_acts_run_as_interleaved_variants_with_their_ratios(capsys):
    """--hidden-acts gelu,gelu_new: every variant runs with each act, labelled
    <variant>:<act>, each variant's acts are compared, and each act with its own fp32."""
    import argparse

    from bench import step_common
    parser = argparse.ArgumentParser()
    step_common.add_step_args(parser)
    args = parser.parse_args(["--variants", "fp32,bf16", "--hidden-acts", "gelu,gelu_new"])
    step_common.check_step_args(parser, args)
    labels = step_common.run_labels(args)
    assert labels == ["fp32:gelu", "fp32:gelu_new", "bf16:gelu", "bf16:gelu_new"]
    assert step_common.parse_variant("bf16:gelu_new") == (False, "bf16")
    assert step_common.act_overrides("bf16:gelu_new") == {"hidden_act": "gelu_new"}
    assert step_common.act_overrides("bf16") == {"hidden_act": "gelu"}
    assert step_common.run_labels(parser.parse_args(["--variants", "fp32"])) == ["fp32"]
    speed = {"fp32:gelu": 10.0, "fp32:gelu_new": 12.5, "bf16:gelu": 15.0, "bf16:gelu_new": 15.0}
    cpu = {"fp32:gelu": 100.0, "fp32:gelu_new": 80.0, "bf16:gelu": 50.0, "bf16:gelu_new": 55.0}
    step_common.print_ratios([(label, {"seq_per_s": speed[label], "cpu_ms": cpu[label]})
                              for label in labels])
    assert capsys.readouterr().out.splitlines() == [
        "bf16:gelu/fp32:gelu sequences/s: 1.50x",
        "bf16:gelu_new/fp32:gelu_new sequences/s: 1.20x",
        "fp32 gelu_new/gelu sequences/s: 1.25x, CPU ms per step: 0.80x",
        "bf16 gelu_new/gelu sequences/s: 1.00x, CPU ms per step: 1.10x"]
    with pytest.raises(SystemExit):
        step_common.check_step_args(parser, parser.parse_args(["--hidden-acts", "gelu_fast"]))
