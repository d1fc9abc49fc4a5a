"""Task name -> Task object, for the names the fine-tuning hparams accept."""

from finetune.classification import CLASSIFICATION_TASKS
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
        return CLASSIFICATION_TASKS[canonical](config, name, tokenizer)
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
    return [get_task(config, name, tokenizer) for name in config.task_names]
