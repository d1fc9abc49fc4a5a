"""Fine-tuning results: the printed line, per-trial JSON, and the seed-README table.

The Chinese ELECTRA README reports, per task and split, the maximum and (in brackets)
the mean over trials with different seeds, e.g. `72.5 (71.9)`, and for QA `EM / F1`.
"""

from util import fs
from util.io import atomic_write_json, atomic_write_text

# The headline metrics of each task type, in table order.
PRIMARY_METRICS = {"classification": ("accuracy",), "tagging": ("f1",), "qa": ("em", "f1")}
SPLIT_TITLES = {"dev": "Development Set", "test": "Test set"}


def format_line(task_name, results):
    """'xnli: accuracy: 72.5 - loss: 0.67' (percentages 1 decimal, loss 2, counts whole)."""
    parts = []
    for key in sorted(results, key=lambda k: (k == "loss", k)):
        value = results[key]
        if isinstance(value, int):
            parts.append("%s: %d" % (key, value))
        elif key == "loss":
            parts.append("%s: %.2f" % (key, value))
        else:
            parts.append("%s: %.1f" % (key, value))
    return "%s: %s" % (task_name, " - ".join(parts))


def summarize(trials):
    """{split: {metric: {"max", "mean", "values"}}} over the trials' results."""
    summary = {}
    for trial in trials:
        for split, results in trial["results"].items():
            for metric, value in results.items():
                summary.setdefault(split, {}).setdefault(metric, {"values": []})
                summary[split][metric]["values"].append(value)
    for metrics in summary.values():
        for stats in metrics.values():
            stats["max"] = max(stats["values"])
            stats["mean"] = sum(stats["values"]) / len(stats["values"])
    return summary


def markdown_table(model_name, task_type, summary, num_trials, params=None):
    """The seed README's table: one row, max (mean) per split; EM / F1 for QA."""
    metrics = PRIMARY_METRICS[task_type]
    splits = [s for s in ("dev", "test") if s in summary]
    header = ["Model"] + [SPLIT_TITLES[s] for s in splits] + ["Trials"]
    if params:
        header.append("Parameter quantity")

    def cell(split):
        stats = summary[split]
        return " / ".join("%.1f (%.1f)" % (stats[m]["max"], stats[m]["mean"])
                          for m in metrics if m in stats)

    row = [model_name] + [cell(s) for s in splits] + [str(num_trials)]
    if params:
        row.append(params)
    lines = ["| %s |" % " | ".join(header), "|" + "---|" * len(header),
             "| %s |" % " | ".join(row)]
    title = " / ".join(m.upper() if m in ("em", "f1") else m.capitalize() for m in metrics)
    return "Metric: %s, max (mean) over %d trial%s.\n\n%s\n" % (
        title, num_trials, "s" if num_trials != 1 else "", "\n".join(lines))


def write_task_results(config, task, trials):
    """Writes results/<task>_results.json and results/<task>_results.md (atomically)."""
    summary = summarize(trials)
    base = fs.join(config.results_dir, "%s_results" % task.name)
    atomic_write_json(base + ".json", {
        "task": task.name, "task_type": task.task_type, "model_name": config.model_name,
        "trials": trials, "summary": summary,
        "hparams": {k: v for k, v in config.to_dict().items()
                    if isinstance(v, (int, float, str, bool, list, dict, type(None)))},
    })
    atomic_write_text(base + ".md", "# %s\n\n%s" % (
        task.name, markdown_table(config.model_name, task.task_type, summary, len(trials))))
