"""Paper-style tables and plots from fine-tuning results and training logs.

    python scripts/report.py D/models/M/results [D/models/M2/results ...] [--out DIR]

Reads every <task>_results.json in the given results directories (written by
run_finetuning.py) and prints a Markdown table in the style of the published Chinese ELECTRA
README (github.com/ymcui/Chinese-ELECTRA): one row per model, per task and split the max and
(mean) over trials, and the parameter count. It also draws, into --out (default: the first
results directory):
  pretraining_losses.png  total / generator / discriminator loss per step (TensorBoard logs)
  pretraining_eval.png    do_eval metrics per step (unsup_results.json), when present
  finetuning_curves.png   per task: the training loss per example (the console's) and the dev
                          metric at each evaluation, of every model and trial
and writes report.md with the table and the plots.
"""

import argparse
import io
import json
import os
import sys
from types import SimpleNamespace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from util import fs  # noqa: E402
from util.io import atomic_write_bytes, atomic_write_text  # noqa: E402
from util.results import PRIMARY_METRICS, SPLIT_TITLES  # noqa: E402,F401 (re-exported)

PRETRAIN_TAGS = ("loss/total", "loss/generator", "loss/discriminator")
EVAL_METRICS = ("disc_accuracy", "disc_auc", "disc_precision", "disc_recall",
                "masked_lm_accuracy")


def load_task_results(results_dir):
    """{task: results dict} for every <task>_results.json in results_dir."""
    found = {}
    for path in fs.glob(fs.join(results_dir, "*_results.json")):
        data = json.loads(fs.read_text(path))
        if "trials" in data and "task" in data:
            found[data["task"]] = data
    return found


def parameter_count(hparams):
    """Encoder parameters (millions) of the model the hparams describe, or None."""
    from model import modeling
    from model.configs import discriminator_config
    try:
        config = discriminator_config(SimpleNamespace(
            model_size=hparams["model_size"], vocab_size=hparams["vocab_size"],
            embedding_size=hparams.get("embedding_size"),
            model_hparam_overrides=hparams.get("model_hparam_overrides", {})))
    except (KeyError, ValueError):
        return None
    return modeling.count_parameters(config) / 1e6


def cell(summary, split, task_type):
    stats = summary.get(split, {})
    parts = ["%.1f (%.1f)" % (stats[m]["max"], stats[m]["mean"])
             for m in PRIMARY_METRICS[task_type] if m in stats]
    return " / ".join(parts) if parts else "-"


def results_table(models):
    """Markdown table; models = [(model name, {task: results})]."""
    tasks = sorted({t for _, results in models for t in results})
    columns = []  # (task, split)
    for task in tasks:
        splits = sorted({s for _, r in models if task in r for s in r[task]["summary"]},
                        key=["dev", "test"].index)
        columns += [(task, s) for s in splits]
    header = ["Model"] + ["%s %s" % (t, SPLIT_TITLES[s].lower()) for t, s in columns] + \
        ["Trials", "Params"]
    lines = ["| %s |" % " | ".join(header), "|" + "---|" * len(header)]
    for name, results in models:
        row = [name]
        for task, split in columns:
            row.append(cell(results[task]["summary"], split, results[task]["task_type"])
                       if task in results else "-")
        any_results = next(iter(results.values()))
        row.append(str(len(any_results["trials"])))
        params = parameter_count(any_results.get("hparams", {}))
        row.append("%.1fM" % params if params else "-")
        lines.append("| %s |" % " | ".join(row))
    metrics = "; ".join("%s: %s" % (t, " / ".join(m.upper() for m in PRIMARY_METRICS[
        next(r[t]["task_type"] for _, r in models if t in r)])) for t in tasks)
    return "Max (mean) over trials. Metrics: %s.\n\n%s\n" % (metrics, "\n".join(lines))


def read_scalars(directory, tags=None):
    """{tag: [(step, value)]} from the TensorBoard event files directly in directory: the
    tags given, or every tag (None). A log cut short by a kill gives what it holds."""
    from util import summaries  # (TensorFlow: only when plotting)
    series = {}
    for path in fs.glob(fs.join(directory, summaries.EVENT_FILE_GLOB)):
        for event in summaries.read_events(path):
            for value in event.summary.value:
                if tags is None or value.tag in tags:
                    series.setdefault(value.tag, {})[event.step] = value.simple_value
    return {tag: sorted(points.items()) for tag, points in series.items()}


def save_figure(plt, fig, path):
    """PNG rendered in memory, then written atomically (matplotlib cannot open gs://)."""
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, png.getvalue())


def plot_pretraining(model_dir, out_dir):
    """Writes pretraining_losses.png (and pretraining_eval.png); returns the file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    series = read_scalars(model_dir, PRETRAIN_TAGS)
    if series:
        fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.5))
        for ax, (tag, points) in zip(list(getattr(axes, "flat", [axes])), series.items()):
            ax.plot([p[0] for p in points], [p[1] for p in points])
            ax.set_title(tag)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        save_figure(plt, fig, fs.join(out_dir, "pretraining_losses.png"))
        written.append("pretraining_losses.png")
    history_file = fs.join(model_dir, "results", "unsup_results.json")
    if fs.exists(history_file):
        history = json.loads(fs.read_text(history_file))
        fig, ax = plt.subplots(figsize=(6, 3.5))
        steps = [h["global_step"] for h in history]
        for metric in EVAL_METRICS:
            if all(metric in h for h in history):
                ax.plot(steps, [h[metric] for h in history], marker="o", label=metric)
        ax.set_xlabel("step")
        ax.set_title("do_eval on %s" % eval_data_label(model_dir), fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save_figure(plt, fig, fs.join(out_dir, "pretraining_eval.png"))
        written.append("pretraining_eval.png")
    return written


def eval_data_label(model_dir):
    """What do_eval read: eval_tfrecords, or (unset) the training tfrecords themselves."""
    try:
        hparams = json.loads(fs.read_text(fs.join(model_dir, "pretrain_hparams.json")))
    except fs.errors() + (ValueError,):
        return "the eval data"
    if hparams.get("eval_tfrecords"):
        return fs.basename(hparams["eval_tfrecords"].split(",")[0])
    return "the training tfrecords (no eval_tfrecords set)"


# The fine-tuning loss the console prints (per example, whatever loss_reduction); event
# files of earlier versions have only the loop's "loss" (the batch's sum, by default).
FINETUNE_LOSS_TAGS = ("mean_example_loss", "loss")
DEV_METRIC_ORDER = ("accuracy", "f1", "em")  # the panel's metric: the first a task has


def finetuning_series(trial_dir, task):
    """(loss label, [(step, loss)], metric name, [(step, dev value)]) of one trial."""
    losses = read_scalars(trial_dir, FINETUNE_LOSS_TAGS)
    tag = next((t for t in FINETUNE_LOSS_TAGS if t in losses), None)
    label = {"mean_example_loss": "training loss per example (the console's)",
             "loss": "training loss (batch sum)"}.get(tag)
    prefix = task + "/"
    dev = {tag[len(prefix):]: points for tag, points in read_scalars(
        fs.join(trial_dir, "eval_dev")).items() if tag.startswith(prefix)}
    metric = next((m for m in DEV_METRIC_ORDER if m in dev),
                  next((m for m in sorted(dev) if m != "loss"), None))
    return label, losses.get(tag, []), metric, dev.get(metric, [])


def plot_finetuning(models, out_dir):
    """finetuning_curves.png: per task, the training loss per step (top) and the dev metric
    at each evaluation (bottom), one line per model and trial; a series of one point (a
    single evaluation) is drawn as a marker."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    curves = {}  # task -> [(model name, trial index, series)]; tasks without curves skipped
    for name, results in models:
        for task, record in results.items():
            for i, trial in enumerate(record.get("trials", [])):
                series = finetuning_series(trial["model_dir"], task)
                if series[1] or series[3]:
                    curves.setdefault(task, []).append((name, i, series))
    tasks = sorted(curves)
    if not tasks:
        return []
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 6.5), squeeze=False,
                             sharex="col")  # a dev point under the training step it scored
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    color_of = {name: colors[i % len(colors)] for i, (name, _) in enumerate(models)}
    for column, task in enumerate(tasks):
        loss_ax, metric_ax = axes[0][column], axes[1][column]
        labels, metrics = set(), set()
        for name, i, (label, losses, metric, dev) in curves[task]:
            for ax, points in ((loss_ax, losses), (metric_ax, dev)):
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points],
                            color=color_of[name], alpha=0.7, label=name if i == 0 else None,
                            marker="o" if len(points) == 1 else None)
            labels.add(label)
            metrics.add(metric)
        loss_ax.set_title(task)
        loss_ax.set_ylabel(" / ".join(sorted(filter(None, labels))), fontsize=8)
        metric_ax.set_ylabel("dev " + " / ".join(sorted(filter(None, metrics))))
        for ax in (loss_ax, metric_ax):
            ax.set_xlabel("step")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    save_figure(plt, fig, fs.join(out_dir, "finetuning_curves.png"))
    return ["finetuning_curves.png"]


def build_report(results_dirs, out_dir, title="Results", preamble=""):
    """Table + plots for the given results directories; writes out_dir/report.md."""
    models = []
    for results_dir in results_dirs:
        results = load_task_results(results_dir)
        if not results:
            raise SystemExit("no <task>_results.json in %s" % results_dir)
        name = next(iter(results.values()))["model_name"]
        models.append((name, results))
    fs.makedirs(out_dir)
    table = results_table(models)
    images = []
    for results_dir in results_dirs:
        images += [img for img in plot_pretraining(fs.dirname(results_dir), out_dir)
                   if img not in images]
    images += plot_finetuning(models, out_dir)
    text = "# %s\n\n%s%s\n%s" % (title, preamble, table,
                                 "".join("![%s](%s)\n\n" % (i[:-4], i) for i in images))
    atomic_write_text(fs.join(out_dir, "report.md"), text)
    return models, table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dirs", nargs="+", help="D/models/M/results directories")
    parser.add_argument("--out", help="where report.md and the plots go "
                                      "(default: the first results directory)")
    args = parser.parse_args(argv)
    _, table = build_report(args.results_dirs, args.out or args.results_dirs[0])
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
