"""Fine-tuning results: the printed line, per-trial JSON with every run's history, and the
seed-README table (one row per run).

The Chinese ELECTRA README reports, per task and split, the maximum and (in brackets)
the mean over trials with different seeds, e.g. `72.5 (71.9)`, and for QA `EM / F1`.
"""

import json

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


def setting_label(hparams):
    """What sets a run's way of learning apart from standard fine-tuning, in words: "rtd-prompt
    zero-shot", "rtd-prompt 8-shot", "rtd-prompt", "8-shot" (the standard head on 8
    examples per label), or "" (standard fine-tuning: rows and lines as they always were)."""
    k = hparams.get("train_examples_per_label") or 0
    shots = "zero-shot" if hparams.get("zero_shot") else "%d-shot" % k if k else ""
    if hparams.get("use_rtd_prompt"):
        return " ".join(filter(None, ["rtd-prompt", shots]))
    return shots


def setting_name(name, hparams):
    """name with the run's setting_label, e.g. 'chnsenticorp (rtd-prompt zero-shot)'."""
    label = setting_label(hparams)
    return "%s (%s)" % (name, label) if label else name


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


def markdown_table(model_name, task_type, runs):
    """A table in the style of the published Chinese ELECTRA README, one row per run (newest
    first): max (mean) over the run's trials per split (EM / F1 for QA), then when it ran and
    the hparams that set it apart from the newest run, so two settings compare side by side.
    A few-shot or rtd-prompt run's model is named with its setting_label, e.g.
    "electra_small (rtd-prompt zero-shot)", beside the fine-tuned rows."""
    metrics = PRIMARY_METRICS[task_type]
    splits = [s for s in ("dev", "test") if any(s in run["summary"] for run in runs)]
    header = (["Model"] + [SPLIT_TITLES[s] for s in splits]
              + ["Trials", "Run", "Settings (vs. the newest run)"])

    def cell(summary, split):
        if split not in summary:
            return "-"
        return " / ".join("%.1f (%.1f)" % (summary[split][m]["max"], summary[split][m]["mean"])
                          for m in metrics if m in summary[split])

    lines = ["| %s |" % " | ".join(header), "|" + "---|" * len(header)]
    for i, run in enumerate(runs):
        row = ([setting_name(model_name, run["hparams"])]
               + [cell(run["summary"], s) for s in splits]
               + [str(len(run["trials"])), run.get("run") or "?",
                  "newest" if i == 0 else settings_difference(run["hparams"],
                                                               runs[0]["hparams"])])
        lines.append("| %s |" % " | ".join(row))
    title = " / ".join(m.upper() if m in ("em", "f1") else m.capitalize() for m in metrics)
    return "Metric: %s, max (mean) over each run's trials; runs newest first.\n\n%s\n" % (
        title, "\n".join(lines))


# Hparams that never set two runs apart in the table (where output goes, how it is logged).
_NOT_SETTINGS = ("model_dir", "results_txt", "results_pkl", "qa_preds_file", "qa_eval_file",
                 "qa_na_file", "test_predictions", "log_every_steps", "log_examples")


def settings_difference(hparams, newest):
    """'learning_rate 0.0001, num_train_epochs 3.0': this run's values where they differ."""
    keys = sorted(k for k in set(hparams) | set(newest)
                  if k not in _NOT_SETTINGS and hparams.get(k) != newest.get(k))
    return ", ".join("%s %s" % (k, json.dumps(hparams.get(k), ensure_ascii=False))
                     for k in keys) or "same hparams (other data)"


# The keys of one run's record (at the top level for the newest, in earlier_runs for others).
_RUN_KEYS = ("run", "settings", "hparams", "trials", "summary")


def _earlier_runs(path, settings):
    """The runs recorded in path other than the one with `settings` (rerun: replaced), newest
    first. A file in the layout before run history counts as one run. A damaged file is
    moved aside (path.damaged), never silently dropped."""
    if not fs.exists(path):
        return []
    try:
        record = json.loads(fs.read_text(path))
        runs = [{k: record[k] for k in _RUN_KEYS if k in record}] + record.get("earlier_runs", [])
    except (ValueError, KeyError, TypeError, AttributeError):
        fs.rename(path, path + ".damaged", overwrite=True)
        print("WARNING: %s could not be read; moved to %s.damaged and started afresh"
              % (path, path), flush=True)
        return []
    return [run for run in runs if run.get("trials") and run.get("settings") != settings]



def write_task_results(config, task, trials, settings, started):
    """Writes results/<task>_results.{json,md,txt} (atomically): this run's trials at the top
    level (as before) and every earlier run of other settings under earlier_runs.

    settings: a key of what the trained models depend on; a rerun with the same key (a
    resumed or re-scored run) replaces its earlier record. started: when this run began.
    """
    base = fs.join(config.results_dir, "%s_results" % task.name)
    earlier = _earlier_runs(base + ".json", settings)
    current = {"run": started, "settings": settings, "trials": trials,
               "summary": summarize(trials),
               "hparams": {k: v for k, v in config.to_dict().items()
                           if isinstance(v, (int, float, str, bool, list, dict, type(None)))}}
    atomic_write_json(base + ".json", dict(current, task=task.name, task_type=task.task_type,
                                           model_name=config.model_name,
                                           earlier_runs=earlier))
    runs = [current] + earlier
    atomic_write_text(base + ".md", "# %s\n\n%s" % (
        task.name, markdown_table(config.model_name, task.task_type, runs)))
    atomic_write_text(config.results_txt_file(task.name), "".join(
        "run %s (%s)\n" % (run.get("run") or "?", "newest" if i == 0 else
                           settings_difference(run["hparams"], current["hparams"]))
        + "".join("trial %d %s %s\n" % (t["trial"], split, format_line(
            setting_name(task.name, run["hparams"]), r))
                  for t in run["trials"] for split, r in t["results"].items())
        for i, run in enumerate(runs)))
