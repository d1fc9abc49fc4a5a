"""Exports a fine-tuned model as a TF SavedModel with a serving signature.

    python export_savedmodel.py MODEL_DIR --out EXPORT_DIR [--task T] [--checkpoint CKPT]

MODEL_DIR is a fine-tuned trial dir, D/models/M/finetuning_models/<task>_model_<i>/; its
newest checkpoint is exported unless --checkpoint names another. EXPORT_DIR gets
saved_model.pb and variables/ (tag "serve", signature "serving_default"), plus
model_info.json and the vocab, so that predict.py (or any TF runtime) can use it alone. An
interrupted export never leaves a half-written EXPORT_DIR; it may be gs:// or ram://. The
export itself, its signature and outputs per task type: finetune/export.py.
"""

import argparse
import sys

from util import interrupt  # noqa: E402
if __name__ == "__main__":  # a stop while TensorFlow loads: one line, no traceback
    interrupt.stop_cleanly_before_start()
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

import configure_finetuning  # noqa: E402
from finetune import export  # noqa: E402
from finetune import model_info  # noqa: E402
from util.errors import run_cli  # noqa: E402
from util.training_utils import quiet_tensorflow  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a fine-tuned trial dir "
                        "(D/models/M/finetuning_models/<task>_model_<i>)")
    parser.add_argument("--out", required=True, help="the SavedModel dir to write")
    parser.add_argument("--task", default=None,
                        help="the task the model was fine-tuned on (checked; default: the "
                             "one recorded in MODEL_DIR)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint prefix to export (default: the newest in MODEL_DIR)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing export at --out")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    quiet_tensorflow()

    def job():
        model = model_info.load(args.model_dir, configure_finetuning.FinetuningConfig,
                                args.task)
        checkpoint = export.find_checkpoint(args.model_dir, args.checkpoint)
        info = export.export(model, checkpoint, args.out, args.overwrite)
        outputs = ", ".join("%s %s %s" % (name, dtype, shape) for name, (dtype, shape)
                            in info["signature"]["outputs"].items())
        print("exported %s (%s) from %s to %s\nsignature %r: inputs input_ids, input_mask, "
              "segment_ids int32 [batch, seq]; outputs %s"
              % (info["task"], info["task_type"], info["checkpoint"], args.out,
                 export.SIGNATURE_KEY, outputs), flush=True)
    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
