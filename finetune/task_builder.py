"""Task name -> Task object, for the names the fine-tuning hparams accept."""

from finetune.classification import CLASSIFICATION_TASKS
from finetune.rtd_prompt import prompted
from finetune.tagging import TAGGING_TASKS
from util.errors import InputError
from util.hparams import closest_names

QA_TASK_NAMES = ("cmrc2018", "drcd")

# Spellings with underscores, as in some scripts and the LERT README.
ALIASES = {"msra_ner": "msra-ner", "peoples_daily_ner": "peoples-daily-ner"}

TASK_NAMES = tuple(CLASSIFICATION_TASKS) + tuple(TAGGING_TASKS) + QA_TASK_NAMES


def get_task(config, name, tokenizer):
    """The Task for name. The name given is kept as task.name (it is also the data
    directory under finetuning_data/); aliases only pick the implementation."""
    canonical = ALIASES.get(name, name)
    if canonical in CLASSIFICATION_TASKS:
        task_class = CLASSIFICATION_TASKS[canonical]
        if getattr(config, "use_rtd_prompt", False):
            task_class = prompted(task_class)
        return task_class(config, name, tokenizer)
    if canonical in TAGGING_TASKS:
        return TAGGING_TASKS[canonical](config, name, tokenizer)
    if canonical in QA_TASK_NAMES:
        # Imported here so that the other tasks do not depend on the QA module.
        from finetune.qa import QATask
        return QATask(config, name, tokenizer)
    suggestions = closest_names(name, TASK_NAMES + tuple(ALIASES))
    hint = ("did you mean %s? " % " or ".join(repr(s) for s in suggestions)
            if suggestions else "")
    raise InputError("unknown task %r in task_names; %sknown tasks: %s"
                     % (name, hint, ", ".join(TASK_NAMES)))


def get_tasks(config, tokenizer):
    """The Tasks of config.task_names, in order (several: one multi-task model, so each
    task at most once)."""
    seen = {}
    for name in config.task_names:
        canonical = ALIASES.get(name, name)
        if canonical in seen:
            raise InputError("task_names lists %s twice (%r and %r): each task gets one head "
                             "of the multi-task model" % (canonical, seen[canonical], name))
        seen[canonical] = name
    check_few_shot_and_prompt(config)
    return [get_task(config, name, tokenizer) for name in config.task_names]


def task_type(name):
    """"classification", "tagging" or "qa" for a known task name, else None."""
    canonical = ALIASES.get(name, name)
    return ("classification" if canonical in CLASSIFICATION_TASKS
            else "tagging" if canonical in TAGGING_TASKS
            else "qa" if canonical in QA_TASK_NAMES else None)


def check_few_shot_and_prompt(config):
    """use_rtd_prompt: one classification task (the template and words are a task's);
    train_examples_per_label: classification tasks only (they have labels to draw by).
    Before any task is built: a prompt is checked against its task only then."""
    others = ["%s (%s)" % (name, task_type(name)) for name in config.task_names
              if task_type(name) not in ("classification", None)]
    if getattr(config, "use_rtd_prompt", False) and (others or len(config.task_names) > 1):
        raise InputError("use_rtd_prompt: one classification task at a time (its template "
                         "and label words are that task's); task_names is %s"
                         % ", ".join(config.task_names))
    if getattr(config, "train_examples_per_label", 0) and others:
        raise InputError("train_examples_per_label %d: only classification tasks have "
                         "labels to draw examples by; not %s"
                         % (config.train_examples_per_label, ", ".join(others)))
