"""Batch inference with a fine-tuned model: JSON lines in, JSON lines out.

    python predict.py MODEL_DIR [--task T] [--batch-size 32] < in.jsonl > out.jsonl

MODEL_DIR is an export of export_savedmodel.py (a SavedModel dir) or a fine-tuned trial dir
(its newest checkpoint). Input, one JSON object a line (blank lines are skipped):
    classification  {"text": "..."}; pair tasks (lcqmc, bqcorpus, xnli, ocnli):
                    {"text_a": "...", "text_b": "..."}
    NER             {"text": "..."}
    QA              {"context": "...", "question": "..."}
Every input line gives one output line: the input object with "id" (the input's own, else
its line number) and the prediction added: "label" and "probabilities" {label: p};
"entities" [{"type", "start", "end", "text"}]; or "answer", "start", "end" (character
offsets, text = context[start:end]; null for an empty answer) and "probability". Inputs
are featurised and outputs decoded by the fine-tuning code (finetune/classification.py,
tagging.py, qa.py), so a prediction equals what evaluation would make of the same text.

All input is read and checked before the model runs: a malformed line stops the run with
`error: <stdin>:N: ...` (exit status 2) and nothing on stdout. Progress goes to stderr.
"""

import argparse
import json
import sys

from util import interrupt  # noqa: E402
if __name__ == "__main__":  # a stop while TensorFlow loads: one line, no traceback
    interrupt.stop_cleanly_before_start()
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import configure_finetuning  # noqa: E402
from finetune import model_info  # noqa: E402
from finetune import predict as inference  # noqa: E402
from util.errors import InputError, run_cli  # noqa: E402
from util.progress import Progress  # noqa: E402
from util.training_utils import quiet_tensorflow  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="an export (export_savedmodel.py) or a fine-tuned "
                        "trial dir (D/models/M/finetuning_models/<task>_model_<i>)")
    parser.add_argument("--task", default=None,
                        help="the task the model was fine-tuned on (checked; default: the "
                             "one recorded in MODEL_DIR)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="sequences per model call (default 32)")
    return parser.parse_args(argv)


def main(argv=None, stdin=None, stdout=None):
    """stdin (binary) and stdout (text) default to the process's."""
    args = parse_args(argv)
    quiet_tensorflow()

    def job():
        if args.batch_size < 1:
            raise InputError("--batch-size must be >= 1, got %d" % args.batch_size)
        # Fails fast on a bad MODEL_DIR.
        model = model_info.load(args.model_dir, configure_finetuning.FinetuningConfig,
                                args.task)
        inputs = inference.read_inputs(model.task, stdin or sys.stdin.buffer)
        runner = inference.open_runner(args.model_dir, model)
        out = stdout or sys.stdout
        progress = Progress(len(inputs), "predicted", stream=sys.stderr)
        for output in inference.predict(model, runner, inputs, args.batch_size, progress):
            out.write(json.dumps(output, ensure_ascii=False) + "\n")
        out.flush()
        progress.finish()
    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
