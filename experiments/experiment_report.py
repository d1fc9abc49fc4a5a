"""docs/experiment/report.md of `make experiment`: what was run, on what, for how long, what it
scored, and what that says, written from the run's own files (nothing typed in by hand).

Sections: command and machine, pre-training data, models, wall-clock, the held-out curve of
pre-training against the character-statistics bar (scripts/char_statistics.py), compute
against the published Chinese ELECTRA-small recipe, does pre-training help (gap vs seed
spread), conclusion, then scripts/report.py's seed-style tables and plots. results.json beside it
holds every figure the report quotes.
"""

import json
import os

from model import modeling
from scripts import char_statistics
from scripts import report
from util.io import atomic_write_json, format_duration
from util.machine import cpu_info

# The published Chinese ELECTRA-small pre-training (../shared/reference/seeds/
# chinese-electra-README: 12 layers, hidden 256, batch 1024, max length 512, 1M steps).
PUBLISHED_SMALL = {"num_hidden_layers": 12, "hidden_size": 256, "train_batch_size": 1024,
                   "max_seq_length": 512, "num_train_steps": 1000000}
CURVE_METRICS = ("masked_lm_loss", "masked_lm_accuracy", "disc_loss", "disc_auc",
                 "disc_auc_real_tokens")


def discriminator_shape(pretrain_hparams):
    """(layers, hidden) of the run's discriminator: the size's config plus the overrides."""
    config = modeling.BertConfig.for_model_size(pretrain_hparams["model_size"]).to_dict()
    config.update(pretrain_hparams.get("model_hparam_overrides", {}))
    return config["num_hidden_layers"], config["hidden_size"]


def compute_comparison(pretrain_hparams):
    """Tokens seen and the transformer's per-token cost (layers x hidden^2, which the
    weight matrices' FLOPs scale with), ours against the published ELECTRA-small."""
    layers, hidden = discriminator_shape(pretrain_hparams)
    ours = {"num_hidden_layers": layers, "hidden_size": hidden,
            **{k: pretrain_hparams[k] for k in ("train_batch_size", "max_seq_length",
                                               "num_train_steps")}}
    rows = {}
    for name, run in (("ours", ours), ("published", PUBLISHED_SMALL)):
        tokens = run["train_batch_size"] * run["max_seq_length"] * run["num_train_steps"]
        rows[name] = dict(run, tokens=tokens,
                          per_token_cost=run["num_hidden_layers"] * run["hidden_size"] ** 2)
    token_ratio = rows["published"]["tokens"] / rows["ours"]["tokens"]
    cost_ratio = rows["published"]["per_token_cost"] / rows["ours"]["per_token_cost"]
    return {"ours": rows["ours"], "published": rows["published"], "token_ratio": token_ratio,
            "compute_ratio": token_ratio * cost_ratio}


def compute_section(compute):
    o, p = compute["ours"], compute["published"]
    line = "| %s | %d x %d | %s x %d x %s | %.2e |"
    return (
        "| pre-training | layers x hidden | batch x length x steps | tokens seen |\n"
        "|---|---|---|---|\n"
        + line % ("this run", o["num_hidden_layers"], o["hidden_size"],
                  format(o["train_batch_size"], ","), o["max_seq_length"],
                  format(o["num_train_steps"], ","), o["tokens"]) + "\n"
        + line % ("published Chinese ELECTRA-small", p["num_hidden_layers"], p["hidden_size"],
                  format(p["train_batch_size"], ","), p["max_seq_length"],
                  format(p["num_train_steps"], ","), p["tokens"]) + "\n\n"
        "The published small model saw %s times the tokens, each costing ~%.0f times as much "
        "(layers x hidden^2): about %.1e times this run's pre-training compute.\n"
        % (format(round(compute["token_ratio"]), ","),
           compute["compute_ratio"] / compute["token_ratio"], compute["compute_ratio"]))


def curve_section(history, bar):
    """The held-out evaluations, one row per checkpoint, and the character-statistics bar."""
    metrics = [m for m in CURVE_METRICS if all(m in h for h in history)]
    rows = ["| step | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    rows += ["| %d | %s |" % (h["global_step"], " | ".join("%.3f" % h[m] for m in metrics))
             for h in history]
    nats = bar["nats"]
    return (
        "\n".join(rows) + "\n\n"
        "The bar the generator's `masked_lm_loss` (nats per masked token) must go below to have "
        "learned more than a character's neighbours give (`python scripts/char_statistics.py "
        "WORK/corpus WORK/heldout_corpus`, counted on the pre-training text, scored on the "
        "held-out text):\n\n%s\n" % char_statistics.format_table(bar)
        + "\nFinal held-out `masked_lm_loss`: %.2f nats; the two-sided bar: %.2f.\n"
        % (history[-1]["masked_lm_loss"], nats["two_sided"]))


def verdict_rows(models):
    """Per task and metric: pre-trained and random-init means, gap and largest seed spread."""
    (_, pre), (_, rand) = models
    rows = []
    for task in sorted(pre):
        summary_p, summary_r = pre[task]["summary"]["dev"], rand[task]["summary"]["dev"]
        for metric in report.PRIMARY_METRICS[pre[task]["task_type"]]:
            p, r = summary_p[metric]["values"], summary_r[metric]["values"]
            gap = sum(p) / len(p) - sum(r) / len(r)
            spread = max(max(p) - min(p), max(r) - min(r))
            rows.append({"task": task, "metric": metric, "pretrained": sum(p) / len(p),
                         "random_init": sum(r) / len(r), "gap": gap, "spread": spread,
                         "helps": gap > spread})
    return rows


def verdicts(rows):
    return ("| task | metric | pre-trained mean | random-init mean | gap | largest seed "
            "spread | gap > spread |\n|---|---|---|---|---|---|---|\n"
            + "\n".join("| %s | %s | %.1f | %.1f | %+.1f | %.1f | %s |" % (
                r["task"], r["metric"], r["pretrained"], r["random_init"], r["gap"],
                r["spread"], "yes" if r["helps"] else "no") for r in rows))


def conclusion(rows, history, bar, compute):
    tasks = sorted({r["task"] for r in rows})
    helped = sorted({r["task"] for r in rows if r["helps"]})
    hurt = sorted({r["task"] for r in rows if r["gap"] < -r["spread"]})
    loss, two_sided = history[-1]["masked_lm_loss"], bar["nats"]["two_sided"]
    text = ("Pre-training beat random initialisation by more than the seeds' spread on %d of "
            "%d tasks%s%s. " % (len(helped), len(tasks),
                                " (%s)" % ", ".join(helped) if helped else "",
                                "; random initialisation was ahead by more than the spread "
                                "on %s" % ", ".join(hurt) if hurt else ""))
    if loss >= two_sided:
        text += ("The generator's held-out loss (%.2f nats) is still above what a character's "
                 "two neighbours give by counting (%.2f): at this budget the encoder has "
                 "learned less context than simple statistics hold, so fine-tuning has little "
                 "to start from. " % (loss, two_sided))
    else:
        text += ("The generator's held-out loss (%.2f nats) is below the two-neighbour "
                 "counting bar (%.2f): it has learned context beyond neighbouring characters. "
                 % (loss, two_sided))
    text += ("The run used about 1/%s of the published ELECTRA-small's pre-training compute "
             "(%s of its tokens): these figures say whether the toolkit trains, not what a "
             "pre-trained Chinese ELECTRA scores, which needs the published budget (or a "
             "released checkpoint)." % (format(round(compute["compute_ratio"]), ","),
                                        "1/" + format(round(compute["token_ratio"]), ",")))
    return text


def write_report(args, plan, timings, pretrained, random_init):
    """report.md, its plots and results.json in args.docs_dir."""
    work = args.work_dir
    with open(os.path.join(work, "corpus_stats.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    with open(os.path.join(work, "pretrain_tfrecords", "dataset_info.json"),
              encoding="utf-8") as f:
        tfrecords = json.load(f)["stats"]
    with open(os.path.join(work, "models", pretrained, "results", "unsup_results.json"),
              encoding="utf-8") as f:
        history = json.load(f)
    print("== character statistics", flush=True)
    bar = char_statistics.char_statistics(os.path.join(work, "corpus"),
                                          os.path.join(work, "heldout_corpus"))
    compute = compute_comparison(plan["pretrain"])
    command = "python experiments/run_experiment.py" + (" --mini" if args.mini else "")
    corpus_rows = "\n".join("| %s | %d | %d |" % (name, c["documents"], c["characters"])
                            for name, c in sorted(corpus.items()))
    timing_rows = "\n".join("| %s | %s |" % (k, format_duration(v)) for k, v in timings.items())
    results_dirs = [os.path.join(work, "models", m, "results") for m in (pretrained, random_init)]
    models = [(m, report.load_task_results(d)) for m, d in zip((pretrained, random_init),
                                                                results_dirs)]
    rows = verdict_rows(models)
    preamble = (
        "Command: `%s` (from a fresh clone with `../shared` beside it; `make experiment`).\n"
        "Machine: 2 CPU cores (%s), no GPU.\n\n"
        "## Conclusion\n\n%s\n\n"
        "## Pre-training data\n\nReal Chinese text from `../shared/data` (evaluation splits "
        "excluded; see `experiments/run_experiment.py`), every 50th document held out for "
        "`do_eval`:\n\n| source | documents | characters |\n|---|---|---|\n%s\n\n"
        "Built into %d examples of up to %d tokens (%d tokens).\n\n"
        "## Models\n\nPre-training hparams: `%s`\n\nFine-tuning hparams: `%s`; per task: `%s`."
        "\nThe random-init baseline is the same model and fine-tuning with "
        "`\"random_init\": true`.\n\n## Wall-clock\n\n| stage | time |\n|---|---|\n%s\n\n"
        "## Pre-training on held-out text\n\n%s\n"
        "## Compute\n\n%s\n"
        "## Does pre-training help?\n\nDev-set metric per task, mean over seeds, against "
        "the larger of the two models' max-min spread over seeds:\n\n%s\n\n"
        "## Results table\n\n" % (
            command, cpu_info()[0], conclusion(rows, history, bar, compute), corpus_rows,
            tfrecords["examples"], plan["pretrain"]["max_seq_length"], tfrecords["tokens"],
            json.dumps(plan["pretrain"]), json.dumps(plan["finetune"]),
            json.dumps(plan["tasks"]), timing_rows, curve_section(history, bar),
            compute_section(compute), verdicts(rows)))
    report.build_report(results_dirs, args.docs_dir,
                        title="Experiment: does pre-training help?", preamble=preamble)
    atomic_write_json(os.path.join(args.docs_dir, "results.json"), {
        **{m: {t: r["summary"] for t, r in res.items()} for m, res in models},
        "verdicts": rows, "heldout_evaluations": history, "char_statistics": bar,
        "compute": compute, "wall_clock_seconds": {k: round(v) for k, v in timings.items()},
        "command": command})
