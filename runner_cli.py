"""The command line both runners share (not a command itself; a top-level module because
command lines live only at the top level, tests/test_layering.py):

    python run_pretraining.py|run_finetuning.py --data-dir D --model-name M [--hparams ...]
"""

import argparse

from util.errors import InputError, run_cli
from util.hparams import load_hparams
from util.training_utils import quiet_tensorflow


def runner_main(argv, description, start, data_dir_help, model_name_help, hparams_help,
                search_dirs=()):
    """Parses argv (--data-dir and --model-name required; --hparams: one or more JSON
    objects or files, merged in order, file names also looked up in search_dirs), keeps
    TensorFlow's Python logging quiet, then runs start(model_name, data_dir, hparams dict)
    under run_cli. Returns the exit status (2 for bad input, with its message on stderr;
    the hparams are read inside, so a bad --hparams is such an input error too)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help=data_dir_help)
    parser.add_argument("--model-name", required=True, help=model_name_help)
    parser.add_argument("--hparams", nargs="+", action="extend", default=[], help=hparams_help)
    args = parser.parse_args(argv)
    quiet_tensorflow()
    return run_cli(lambda: start(args.model_name, args.data_dir,
                                 flag_keys_refused(load_hparams(args.hparams,
                                                                search_dirs=search_dirs))))


def flag_keys_refused(hparams):
    """hparams, unless it sets what the command line sets (the two would disagree)."""
    for key, flag in (("model_name", "--model-name"), ("data_dir", "--data-dir")):
        if key in hparams:
            raise InputError("--hparams: %s is set by %s, not in --hparams (got %r): drop it "
                             "from the JSON and pass %s %s" % (key, flag, hparams[key], flag,
                                                               hparams[key]))
    return hparams
