"""Every fine-tuning hparam, with its default and what it does.

Override with `--hparams` (inline JSON, a JSON file, or a bare name found in params/; several
are merged in order). A model pre-trained here lends its shape (model_size,
model_hparam_overrides, embedding_size, vocab_size) from D/models/M/pretrain_hparams.json to
the keys the hparams leave unset.
Defaults follow the official ELECTRA fine-tuning code and the Chinese ELECTRA README:
lr 1e-4 (3e-4 for small), layer-wise lr decay 0.8, 3 epochs (2 and seq 512 for QA).
"""

import json
import os

from model.precision import MIXED_PRECISION_CHOICES, choice_error
from util import distribute
from util import fs
from util import tpu
from util.errors import InputError
from util.hparams import check_known_keys, check_value_type

QA_TASKS = ("cmrc2018", "drcd")


class FinetuningConfig(object):
    """Defines fine-tuning hyperparameters."""

    def __init__(self, model_name, data_dir, **kwargs):
        # general
        self.model_name = model_name  # the pre-trained model in <data_dir>/models/<model_name>
        self.debug = False  # few steps, to check that things run
        self.log_examples = False  # print the first featurised examples of each split
        self.num_trials = 1  # train+eval repetitions, each with its own seed
        self.seed = 1  # trial i (1-based) uses seed + i - 1
        self.do_train = True  # fine-tune
        self.do_eval = True  # score the dev set
        self.do_test = False  # score the test set (needs labels in the test file)
        self.write_test_outputs = False  # predict the test set and write the predictions
        self.n_writes_test = 5  # write_test_outputs: only for the first n trials
        self.write_distill_outputs = False  # official: train-set outputs of GLUE tasks (no task here has any)
        self.keep_all_models = True  # False: only the last trial's checkpoint is kept

        # model
        self.model_type = "electra"  # "bert" for BERT-wwm/RoBERTa-wwm-ext/MacBERT/LERT checkpoints
        self.model_size = "small"  # tiny, small, small_ex, base or large
        self.task_names = ["chnsenticorp"]  # tasks to fine-tune; several: one multi-task model (one head each)
        self.model_hparam_overrides = {}  # changes to the transformer shape
        self.embedding_size = None  # None: the size config's embedding_size
        self.vocab_size = 21128  # must equal the vocab's line count
        self.do_lower_case = True  # lower-case text before WordPiece
        self.strip_accents = None  # None: same as do_lower_case
        self.spm_model_file = None  # SentencePiece model instead of the WordPiece vocab

        # training
        self.learning_rate = 1e-4  # peak lr (the seed README uses 3e-4 for small)
        self.weight_decay_rate = 0.01  # AdamW decoupled weight decay
        self.layerwise_lr_decay = 0.8  # lr x decay^(depth from the top); <= 0 disables
        self.num_train_epochs = 3.0  # passes over the training set
        self.warmup_proportion = 0.1  # share of steps with linear warm-up
        self.loss_reduction = "sum"  # "sum" of the per-example losses over the batch (official) or "mean" (not official)
        self.save_checkpoints_steps = 1000000  # checkpoint interval (and at the end)
        self.keep_checkpoint_max = 1  # newest checkpoints kept per trial
        self.iterations_per_loop = 1000  # TPU steps per host loop (TPU only)
        self.log_every_steps = 100  # steps between progress lines
        self.use_tfrecords_if_existing = True  # reuse featurised tfrecords of an earlier run
        self.strict_input = False  # refuse data a reader would repair (a QA answer_start missing its answer, an answer not in its context)
        self.init_checkpoint = None  # None: the newest checkpoint in <data_dir>/models/<model_name>
        self.random_init = False  # True: no pre-trained weights (the from-scratch baseline)

        # sizing
        self.max_seq_length = 128  # tokens per input ([CLS]/[SEP] included)
        self.train_batch_size = 32  # sequences per training step
        self.eval_batch_size = 32  # sequences per eval step
        self.predict_batch_size = 32  # sequences per prediction step (dev/test); follows eval_batch_size if only that is set
        self.double_unordered = False  # also train pair tasks on (b, a)

        # QA (cmrc2018, drcd)
        self.max_query_length = 64  # question tokens kept
        self.doc_stride = 128  # step between overlapping context windows
        self.n_best_size = 20  # start/end candidates considered per window
        self.max_answer_length = 30  # longest answer, in tokens
        self.joint_prediction = True  # the official head: end logits given the start; False: independent start/end
        self.beam_size = 20  # joint_prediction: best starts kept, and best ends per start
        self.answerable_classifier = True  # both QA heads: an "is impossible" classifier in the loss
        self.answerable_uses_start_logits = True  # it also reads the start-probability-weighted vector
        self.answerable_weight = 0.5  # its weight in the loss
        self.qa_na_threshold = -2.75  # "no answer" above it (SQuAD 2.0-style sets; CMRC 2018 and DRCD have none)

        # speed (model/precision.py; README "Speed")
        self.use_xla = False  # compile the training graph with XLA (CPU and GPU; TPUs always do)
        self.mixed_precision = "none"  # "bf16" (CPU/TPU) or "fp16" (GPU): low-precision encoder math, float32 weights

        # several GPUs or hosts (tf.distribute); train_batch_size stays the global batch
        self.distribution = "none"  # "none", "mirrored" (local GPUs), "multi_worker_mirrored" (TF_CONFIG)
        self.num_gpus = 0  # with "mirrored": the first num_gpus GPUs; 0 = every visible GPU
        self.mirrored_devices = []  # with "mirrored": explicit devices, e.g. ["/cpu:0", "/cpu:1"]

        # TPU
        self.use_tpu = False  # fine-tune with TPUEstimator on a Cloud TPU
        self.use_tpu_estimator = False  # the TPU graph (TPUEstimator, use_tpu=False) on CPU/GPU: tests the TPU path
        self.num_tpu_cores = 1  # TPU cores; batch sizes are global and must split over them
        self.tpu_job_name = None  # TPU worker job name
        self.tpu_name = None  # Cloud TPU name
        self.tpu_zone = None  # GCE zone of the Cloud TPU
        self.gcp_project = None  # GCP project of the Cloud TPU

        # locations
        self.data_dir = data_dir  # the data root D
        self.raw_data_dir = os.path.join(data_dir, "finetuning_data")  # <task>/{train,dev,test}.*
        self.vocab_file = None  # None: <model dir>/vocab.txt, else <data_dir>/vocab.txt
        # Official path keys; None: the defaults below. {task}, {split}, {trial} are filled in
        # (and the official positional {} / {:} with task[, split, trial]).
        self.model_dir = None  # trial i in <model_dir>_<i>; None: <model dir>/finetuning_models/{task}_model
        self.results_txt = None  # one results line per trial; None: <results>/{task}_results.txt
        self.results_pkl = None  # accepted; no pickles: results go to <results>/<task>_results.json
        self.qa_preds_file = None  # QA predictions; None: <results>/{task}_qa/{task}_{split}_preds.json
        self.qa_eval_file = None  # QA scores of a split; None: <results>/{task}_qa/{task}_{split}_eval.json
        self.qa_na_file = None  # QA answerable logits per question; None: <results>/{task}_qa/{task}_{split}_null_odds.json
        self.test_predictions = None  # test-set predictions; None: the split's preds file

        inherited = self._pretrained_shape(kwargs)
        self._apply(dict(inherited, **kwargs))
        self.inherited_shape = inherited  # (not an hparam) what came from pretrain_hparams.json

    def _pretrained_shape(self, kwargs):
        """The shape keys that D/models/M/pretrain_hparams.json (written by our pre-training)
        records and kwargs leave unset: fine-tuning a model pre-trained with overrides
        needs no copy of them. A model_size other than the recorded one is the user's
        choice of another shape: then nothing is taken (the checkpoint check judges it)."""
        path = os.path.join(self.data_dir, "models", self.model_name, "pretrain_hparams.json")
        if not fs.exists(path):
            return {}
        try:
            recorded = json.loads(fs.read_text(path))
        except ValueError:
            raise InputError("%s is not valid JSON: restore it, or set model_size, "
                             "model_hparam_overrides and vocab_size explicitly" % path)
        size = recorded.get("model_size")
        if "model_size" in kwargs and str(kwargs["model_size"]).replace("-", "_") != size:
            return {}
        shape = {key: recorded[key] for key in ("model_size", "model_hparam_overrides",
                                                "embedding_size", "vocab_size")
                 if key in recorded}
        if recorded.get("electra_objective") is False:
            shape["model_type"] = "bert"  # the BERT MLM objective's checkpoint names
        return {key: value for key, value in shape.items()
                if key not in kwargs and value != getattr(self, key)}

    def _apply(self, kwargs):
        self.update(kwargs)
        if len(self.task_names) == 1 and self.task_names[0] in QA_TASKS:
            self._default("max_seq_length", 512, kwargs)
            self._default("num_train_epochs", 2.0, kwargs)
        if "eval_batch_size" in kwargs:
            self._default("predict_batch_size", self.eval_batch_size, kwargs)
        if self.model_size == "large":
            self._default("learning_rate", 5e-5, kwargs)
            self._default("layerwise_lr_decay", 0.9, kwargs)
        if self.debug:
            for key, value in (("num_train_epochs", 1.0), ("log_examples", True),
                               ("num_trials", 1), ("log_every_steps", 1)):
                self._default(key, value, kwargs)
        self.model_size = self.model_size.replace("-", "_")
        pretrained = os.path.join(self.data_dir, "models", self.model_name)
        self.pretrained_model_dir = pretrained  # where the pre-trained checkpoint lives
        if self.vocab_file is None:
            in_model = os.path.join(pretrained, "vocab.txt")
            self.vocab_file = in_model if fs.exists(in_model) \
                else os.path.join(self.data_dir, "vocab.txt")
        self.results_dir = os.path.join(pretrained, "results")
        self.preprocessed_data_dir = os.path.join(pretrained, "finetuning_tfrecords")
        self._validate()

    def _default(self, key, value, kwargs):
        """Task/size defaults apply unless the user set the key."""
        if key not in kwargs:
            setattr(self, key, value)

    def update(self, kwargs):
        check_known_keys(kwargs, list(self.__dict__), "fine-tuning hparams")
        for key, value in kwargs.items():
            self.__dict__[key] = check_value_type(key, value, self.__dict__[key],
                                                  "fine-tuning hparams")

    def _validate(self):
        def need(cond, msg):
            if not cond:
                raise InputError("fine-tuning hparams: " + msg)
        need(self.task_names, "task_names must name at least one task")
        need(self.mixed_precision in MIXED_PRECISION_CHOICES, choice_error(self.mixed_precision))
        need(self.model_type in ("electra", "bert"),
             "model_type must be \"electra\" or \"bert\", got %r" % self.model_type)
        distribute.check_hparams(self, "fine-tuning hparams")
        tpu.check_hparams(self, "fine-tuning hparams")
        need(self.num_trials >= 1, "num_trials must be >= 1")
        need(self.max_seq_length >= 8, "max_seq_length must be >= 8")
        need(self.train_batch_size > 0 and self.eval_batch_size > 0, "batch sizes must be > 0")
        need(self.num_train_epochs > 0, "num_train_epochs must be > 0")
        need(0 <= self.warmup_proportion < 1, "warmup_proportion must be in [0, 1)")
        need(self.predict_batch_size > 0, "predict_batch_size must be > 0")
        need(self.loss_reduction in ("sum", "mean"), "loss_reduction must be \"sum\" "
             "(official) or \"mean\", got %r" % (self.loss_reduction,))
        need(self.beam_size >= 1, "beam_size must be >= 1")
        need(self.n_writes_test >= 0, "n_writes_test must be >= 0")
        need(self.doc_stride > 0 and self.max_query_length > 0, "doc_stride and "
             "max_query_length must be > 0")

    def trial_model_dir(self, task_name, trial):
        """Fine-tuned checkpoints of one trial (1-based): <model_dir>_<trial>; task_name is
        the task, or the tasks' names joined by "_" for a multi-task model."""
        pattern = self.model_dir or os.path.join(self.pretrained_model_dir,
                                                 "finetuning_models", "{task}_model")
        return fill_path(pattern, task_name) + "_%d" % trial

    def preds_file(self, task_name, split, trial=1):
        """Predictions of a split: results/<task>_qa/<task>_<split>_preds.json for QA (the
        seed README's place), results/<task>_<split>_preds.json otherwise; later trials
        add _trial<i>. qa_preds_file and test_predictions override these."""
        if split == "test" and self.test_predictions:
            return fill_path(self.test_predictions, task_name, split, trial)
        if task_name in QA_TASKS:
            return self.qa_file(self.qa_preds_file, "preds", task_name, split, trial)
        return os.path.join(self.results_dir, "%s_%s_preds%s.json"
                            % (task_name, split, _trial_suffix(trial)))

    def qa_file(self, pattern, kind, task_name, split, trial=1):
        """A QA output file: pattern (an official path key) filled in, else
        results/<task>_qa/<task>_<split>_<kind>.json (_trial<i> for later trials)."""
        if pattern:
            return fill_path(pattern, task_name, split, trial)
        return os.path.join(self.results_dir, task_name + "_qa", "%s_%s_%s%s.json"
                            % (task_name, split, kind, _trial_suffix(trial)))

    def results_txt_file(self, task_name):
        return fill_path(self.results_txt or os.path.join(self.results_dir,
                                                          "{task}_results.txt"), task_name)

    def to_dict(self):
        return dict(self.__dict__)


def _trial_suffix(trial):
    return "_trial%d" % trial if trial > 1 else ""


def fill_path(pattern, task_name, split=None, trial=1):
    """pattern with {task}, {split}, {trial} and the official positional {} / {:} (task,
    split, trial in that order) filled in; a later trial whose path would not differ from
    the first's gets _trial<i> before the extension, so trials never overwrite each other."""
    def fill(number):
        return pattern.format(task_name, split, number, task=task_name, split=split,
                              trial=number)
    try:
        path = fill(trial)
    except (KeyError, IndexError, ValueError) as err:
        raise InputError("fine-tuning hparams: cannot fill in the path %r (%s): use "
                         "{task}, {split} or {trial}" % (pattern, err))
    if trial > 1 and path == fill(1):
        root, ext = os.path.splitext(path)
        path = root + _trial_suffix(trial) + ext
    return path
