"""experiments/pretrain_dynamics.py in miniature: a run with each masking, the ChnSentiCorp
probe from one of them and from random weights, and the summary tables."""

import json
import re

import pytest

from experiments import pretrain_dynamics
from tests.conftest import REPO, shared_file, tsv_accuracy

TINY = {"model_size": "tiny", "save_graph_def": False,
        "model_hparam_overrides": {}, "embedding_size": None}
PRETRAIN = dict(TINY, train_batch_size=4, eval_batch_size=4, num_eval_steps=2)
FINETUNE = dict(TINY, max_seq_length=32, num_train_epochs=0.2, num_trials=2,
                eval_batch_size=128)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    shared_file("data", "chnsenticorp", "train.tsv")
    work = tmp_path_factory.mktemp("dynamics")
    # 60 documents per source: the full corpus's build would cost more than the runs
    common = ["--workdir", str(work), "--steps", "4", "--corpus-limit", "60"]
    assert pretrain_dynamics.main(common + ["--seed", "3", "--hparams",
                                            json.dumps(PRETRAIN)]) == 0
    assert pretrain_dynamics.main(common + ["--seed", "3", "--masking", "official",
                                            "--hparams", json.dumps(PRETRAIN)]) == 0
    return work


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_run_records_the_final_checkpoints_metrics(workdir):
    names = sorted(p.name for p in (workdir / "results").iterdir())
    base = "hp-%s+steps4_seed3" % "-".join("%s=%s" % kv for kv in sorted(PRETRAIN.items()))
    assert names == sorted([base + ".json", "masking-official+" + base + ".json"])
    result = read(workdir / "results" / (base + ".json"))
    assert result["steps"] == 4 and result["seed"] == 3
    assert result["hparams"]["num_warmup_steps"] == 1  # a quarter of the steps
    assert result["hparams"]["model_size"] == "tiny"
    assert set(pretrain_dynamics.METRICS) <= set(result["metrics"])
    # the figures are the run's last evaluation (of step 4) as pre-training recorded it
    history = read(workdir / "data" / "models" / base / "results" /
                   "unsup_results.json")
    assert history[-1]["global_step"] == 4
    assert result["metrics"] == {k: history[-1][k] for k in pretrain_dynamics.METRICS}
    official = read(workdir / "results" / ("masking-official+" + base + ".json"))
    assert official["hparams"]["masking"] == "official"


def test_summary_has_official_figures_and_one_column_per_variant(workdir, capsys):
    table = pretrain_dynamics.summarize(str(workdir / "results"))
    header = table.splitlines()[0]
    assert "official (1 run)" in header and header.count("(n=1; seeds 3)") == 2
    # The official column repeats the official run's figures as docs/pretrain_dynamics.md
    # records them (the measurement's write-up), metric by metric.
    doc = (REPO / "docs" / "pretrain_dynamics.md").read_text(encoding="utf-8")
    recorded = {m.group(1): m.group(2) for m in re.finditer(
        r"^\| (\w+)(?: \(official definition\))? \| ([\d.]+) \|", doc, re.M)}
    assert len(recorded) >= 8
    shown = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in table.splitlines()
             if line.startswith("| ") and line.split(" | ")[0][2:] in recorded}
    assert shown == recorded


def test_downstream_probe_from_a_run_and_from_random_weights(workdir, capsys):
    run = next(p.stem for p in (workdir / "results").iterdir()
               if not p.name.startswith("masking"))
    for source in (run, "random"):
        assert pretrain_dynamics.main(["--workdir", str(workdir), "--downstream", source,
                                       "--hparams", json.dumps(FINETUNE)]) == 0
        result = read(workdir / "downstream" / (source + ".json"))
        assert result["train_reviews"] == 1000
        # each trial's accuracy is its dev predictions' against the labels of dev.tsv
        results = workdir / "data" / "models" / ("random_init" if source == "random" else
                                                 source) / "results"
        dev_tsv = (workdir / "data" / "finetuning_data" / "chnsenticorp" / "dev.tsv")
        assert result["dev_accuracy"] == pytest.approx([tsv_accuracy(
            read(results / name), dev_tsv.read_text(encoding="utf-8"), label_column=1)
            for name in ("chnsenticorp_dev_preds.json", "chnsenticorp_dev_preds_trial2.json")])
    train = (workdir / "data" / "finetuning_data" / "chnsenticorp" / "train.tsv")
    assert len(train.read_text(encoding="utf-8").splitlines()) == 1 + 1000
    # the random-weights probe really starts from no checkpoint
    assert read(workdir / "downstream" / "random.json")["hparams"]["random_init"] is True
    capsys.readouterr()
    table = pretrain_dynamics.summarize(str(workdir / "results"))
    assert "| random | 2 |" in table and ("| %s | 2 |" % run) in table
    # a finished probe is not redone
    assert pretrain_dynamics.main(["--workdir", str(workdir), "--downstream", "random"]) == 0
    assert "exists" in capsys.readouterr().out


def test_downstream_of_an_unknown_run_is_refused(workdir, capsys):
    assert pretrain_dynamics.main(["--workdir", str(workdir), "--downstream",
                                   "no_such_run"]) == 2
    err = capsys.readouterr().err
    assert "no_such_run" in err and "random" in err
