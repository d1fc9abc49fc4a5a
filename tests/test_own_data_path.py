"""The docs' CPU own-data path (scripts/own_data_cpu.sh, docs/own-data.md) in miniature: the
same commands on fewer reviews and steps learn (dev accuracy clears the majority class by a
margin), explain themselves (the inherited model shape is announced) and keep stderr free of
TensorFlow's CUDA/cuDNN start-up lines."""

import json
import os
import re
import subprocess
import sys

from tests.conftest import REPO, shared_file

MARGIN = 10.0  # accuracy points above always answering the dev set's majority label


def test_own_data_path_in_miniature_learns_and_stays_quiet(tmp_path):
    shared = shared_file("data", "chnsenticorp")
    env = dict(os.environ, PY=sys.executable, D=str(tmp_path / "D"), SHARED=str(shared),
               REVIEWS="1200",
               PRETRAIN_HPARAMS=json.dumps({"num_train_steps": 20, "num_warmup_steps": 2,
                                            "save_checkpoints_steps": 20,
                                            "num_eval_steps": 2,
                                            "log_every_steps": 50,
                                            "save_graph_def": False}),
               FINETUNE_HPARAMS=json.dumps({"max_seq_length": 32, "num_train_epochs": 4,
                                            "learning_rate": 1e-3,
                                            "predict_batch_size": 128,
                                            "save_graph_def": False}))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    done = subprocess.run(["bash", str(REPO / "scripts" / "own_data_cpu.sh")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    noise = [line for line in done.stderr.splitlines()
             if re.search(r"cuda|cudnn|cufft|cublas|TensorRT", line, re.I)]
    assert not noise, noise
    assert "model shape from" in done.stdout and '"hidden_size": 128' in done.stdout
    # The preset evaluates every checkpoint (0 and 20) on the examples the builder held out.
    evaluated = re.findall(r"evaluating \d+ batches of \d+ from (\S+)", done.stdout)
    assert len(evaluated) == 2 and all("pretrain_eval.tfrecord-" in e for e in evaluated), \
        evaluated

    labels = [row.split("\t")[1] for row in
              (shared / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:] if row]
    majority = 100.0 * max(labels.count(label) for label in set(labels)) / len(labels)
    preds = json.loads((tmp_path / "D" / "models" / "small4x128" / "results" /
                        "chnsenticorp_dev_preds.json").read_text())
    accuracy = 100.0 * sum(preds[str(i)] == label for i, label in enumerate(labels)) / len(labels)
    assert accuracy > majority + MARGIN, (accuracy, majority)
    predictions = [json.loads(line) for line in done.stdout.splitlines()
                   if line.startswith("{")]
    assert len(predictions) == 2 and all(  # the export answers, one line per input
        p["label"] == max(p["probabilities"], key=p["probabilities"].get)
        for p in predictions), predictions
