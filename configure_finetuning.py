"""Every fine-tuning hparam, with its default and what it does.

Override with `--hparams` (inline JSON, a JSON file, or a bare name found in params/; several
are merged in order). A model pre-trained here lends its shape (model_size,
model_hparam_overrides, embedding_size, vocab_size; model_type "bert" if it was pre-trained
with the BERT MLM objective) from D/models/M/pretrain_hparams.json to the keys the hparams
leave unset.
Defaults follow the official ELECTRA fine-tuning code and the Chinese ELECTRA README:
lr 1e-4 (3e-4 for small), layer-wise lr decay 0.8, 3 epochs (2 and seq 512 for QA).
"""

import json
import os

from model.optimization import check_hparams as check_accumulation
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
        self.model_name = model_name  # the pre-trained model in D/models/<model_name>, set
                                      # by --model-name (not --hparams)
        self.debug = False  # few steps, to check that things run: one epoch, progress every step,
                            # examples logged
        self.log_examples = False  # print the first featurised examples of each split
        self.num_trials = 1  # train+eval repetitions, each with its own seed
        self.seed = 1  # trial i (1-based) uses seed + i - 1
        self.do_train = True  # fine-tune
        self.do_eval = True  # score the dev set
        self.eval_each_checkpoint = False  # with do_eval: also score dev at each checkpoint
                                           # saved while training (a curve in TensorBoard's
                                           # eval_dev; the results are the final step's)
        self.do_test = False  # score the test set (needs labels in the test file)
        self.write_test_outputs = False  # predict the test set and write the predictions
        self.n_writes_test = 5  # write_test_outputs: only in the first n trials (official)
        self.write_distill_outputs = False  # official: writes train-set outputs of GLUE tasks for
                                            # distillation; no task here has them (True only logs
                                            # that)
        self.keep_all_models = True  # False: only the last trial's checkpoint is kept

        # model
        self.model_type = "electra"  # "bert": BERT-family checkpoints (BERT-wwm, RoBERTa-wwm-ext,
                                     # MacBERT, PERT, LERT): encoder under bert/, [CLS] through the
                                     # pooler
        self.model_size = "small"  # tiny, small, small_ex, base or large (must match the
                                   # checkpoint)
        self.task_names = ["chnsenticorp"]  # tasks to fine-tune; several train one multi-task
                                            # model (one encoder, a head per task, each example's
                                            # loss from its own task's head), as the official
                                            # runner does; results are still per task
        self.model_hparam_overrides = {}  # changes to the transformer shape
        self.embedding_size = None  # None: the size config's embedding_size
        self.vocab_size = 21128  # must equal the vocab's line count
        self.do_lower_case = True  # lower-case text before WordPiece
        self.strip_accents = None  # None: same as do_lower_case
        self.spm_model_file = None  # SentencePiece model instead of the WordPiece vocab

        # training
        self.learning_rate = 1e-4  # peak lr (the published recipe: 3e-4 for small)
        self.weight_decay_rate = 0.01  # AdamW decoupled weight decay
        self.optimizer = "adamw"  # "adamw" (official) or "lamb": AdamW's update times the layer-wise
                                  # trust ratio ||w|| / ||update|| (large batches; not official)
        self.gradient_accumulation_steps = 1  # k: an update sums k micro-batches of
                                              # train_batch_size / k; steps count updates
        self.layerwise_lr_decay = 0.8  # lr x decay^(depth from the top), embeddings lowest; <= 0
                                       # disables
        self.num_train_epochs = 3.0  # passes over the training set
        self.warmup_proportion = 0.1  # share of steps with linear warm-up
        self.loss_reduction = "sum"  # "sum": the batch loss is the sum of the per-example losses
                                     # (official; clipped at global norm 1.0); "mean": their mean
                                     # (not official, see docs/differences-from-official.md)
        self.save_checkpoints_steps = 1000000  # checkpoint interval (and at the end)
        self.save_checkpoints_secs = 600  # also a checkpoint once this many seconds have
                                          # passed (a SIGKILL loses minutes); 0: steps only
        self.keep_checkpoint_max = 5  # newest checkpoints kept per trial (official: RunConfig's 5)
        self.save_graph_def = True  # also write graph.pbtxt and a .meta per checkpoint (the
                                    # Estimator's files; TensorBoard reads the graph from the
                                    # event file either way): false saves seconds per start
        self.iterations_per_loop = 1000  # TPU steps per host loop (TPU only)
        self.log_every_steps = 100  # steps between progress lines
        self.use_tfrecords_if_existing = True  # reuse featurised tfrecords of an earlier run
        self.strict_input = False  # refuse data a reader would repair (a QA answer_start missing
                                   # its answer, an answer not in its context)
        self.init_checkpoint = None  # None: the newest checkpoint in D/models/<model_name>
        self.random_init = False  # True: no pre-trained weights (the from-scratch baseline)

        # sizing
        self.max_seq_length = 128  # tokens per input, [CLS]/[SEP] included
        self.train_batch_size = 32  # sequences per training step
        self.eval_batch_size = 32  # sequences per eval step
        self.predict_batch_size = 32  # sequences per prediction batch of dev/test (official)
        self.double_unordered = False  # also train pair tasks (lcqmc, bqcorpus) on (b, a)

        # Few-shot and rtd-prompt classification
        # Not in the official code; off by default (docs/finetuning.md "Prompt-based
        # classification through the discriminator head")
        self.train_examples_per_label = 0  # k > 0: train on k examples of each label, sampled
                                           # with seed from the training set (the same ones
                                           # for either head); 0: every training example
        self.use_rtd_prompt = False  # classification tasks: no new head; each label's word
                                     # is put in rtd_prompt_template and the pre-trained
                                     # discriminator head (discriminator_predictions/) scores
                                     # how "original" it looks there; the best label wins
        self.rtd_prompt_template = ""  # the text of a prompt: {text_a}, {text_b} (pair tasks)
                                       # and {label} where a label word goes, e.g.
                                       # "{text_a}总之很{label}。" (one per task in
                                       # params/params_<task>_rtd_prompt.json)
        self.rtd_prompt_label_words = {}  # each label's word(s): {"0": "差", "1": "好"}; a
                                          # list of words is averaged, e.g. {"1": ["好", "棒"]}
        self.zero_shot = False  # with use_rtd_prompt: train nothing (no training file is read);
                                # the pre-trained model scores dev/test as it is

        # QA
        # cmrc2018, drcd
        self.max_query_length = 64  # question tokens kept
        self.doc_stride = 128  # step between overlapping context windows
        self.n_best_size = 20  # answers kept per question; with joint_prediction False also the
                               # start/end candidates per window
        self.max_answer_length = 30  # longest answer, in tokens
        self.joint_prediction = True  # the official QA head (end logits given the start;
                                      # docs/finetuning.md); False: the official independent head
                                      # (start dense, end dense_1, both with the answer mask)
        self.beam_size = 20  # joint head: best starts kept, and best ends per start, at prediction
        self.answerable_classifier = True  # both QA heads (as officially): an "is impossible"
                                           # classifier on [CLS] in the loss (target 0: CMRC 2018 /
                                           # DRCD have no unanswerable questions)
        self.answerable_uses_start_logits = True  # it also reads the start-probability-weighted
                                                  # vector, through dense(512, gelu)
        self.answerable_weight = 0.5  # its weight in the loss
        self.qa_na_threshold = -2.75  # "no answer" threshold of SQuAD 2.0-style test outputs
                                      # (accepted; no task here has unanswerable questions)

        # speed
        # model/precision.py; docs/scaling.md "Speed: mixed precision and XLA"
        self.use_xla = False  # compile the training graph with XLA (CPU and GPU; TPUs always do)
        self.mixed_precision = "none"  # "bf16" (CPU/TPU) or "fp16" (GPU only), as in pre-training:
                                       # low-precision encoder math, float32 weights

        # several GPUs or hosts
        # tf.distribute (docs/scaling.md); train_batch_size stays the global batch
        self.distribution = "none"  # "mirrored": train data-parallel over this machine's GPUs;
                                    # "multi_worker_mirrored": over the hosts in TF_CONFIG;
                                    # predictions run on one device
        self.num_gpus = 0  # with "mirrored": use the first num_gpus GPUs; 0 = every visible GPU
        self.mirrored_devices = []  # with "mirrored": explicit device list, e.g. ["/cpu:0",
                                    # "/cpu:1"]; [] = by num_gpus

        # TPU
        self.use_tpu = False  # fine-tune with TPUEstimator on a Cloud TPU (training, dev/test
                              # prediction): static shapes (training batches drop the remainder;
                              # dev/test sets are padded to whole eval_batch_size batches with
                              # examples marked is_real_example 0, which never reach a score, a
                              # prediction file or a results table), one-hot embedding lookups,
                              # num_trials/write_test_outputs/QA and NER decoding as on CPU
        self.use_tpu_estimator = False  # the same TPU graph with TPUEstimator(use_tpu=False) on
                                        # this machine's CPU/GPU (what the tests use); progress
                                        # lines without the loss, as on a TPU; distribution must be
                                        # "none"
        self.num_tpu_cores = 1  # TPU cores; train_batch_size and eval_batch_size are global and
                                # must be multiples of it
        self.tpu_job_name = None  # TPU worker job name
        self.tpu_name = None  # Cloud TPU name
        self.tpu_zone = None  # GCE zone of the Cloud TPU
        self.gcp_project = None  # GCP project of the Cloud TPU

        # locations
        self.data_dir = data_dir  # the data root D, set by --data-dir (not --hparams)
        self.raw_data_dir = os.path.join(data_dir, "finetuning_data")  # holds
                                                                       # <task>/{train,dev,test}.*
        self.vocab_file = None  # None: D/models/<model_name>/vocab.txt if it exists, else
                                # D/vocab.txt

        # output paths
        # Official path keys; None: the default named (<results>: D/models/<model_name>/results).
        # {task}, {split}, {trial} are filled in (or the official positional {} / {:}, with task,
        # split, trial in that order); a later trial whose path would not change gets _trial<i>
        # before the extension.
        self.model_dir = None  # trial i's checkpoints in <model_dir>_<i> ({task}: the task, or the
                               # task names joined by _ for a multi-task model); None:
                               # D/models/<model_name>/finetuning_models/{task}_model
        self.results_txt = None  # one results line per trial and split; None:
                                 # <results>/{task}_results.txt
        self.results_pkl = None  # accepted for official params files; nothing is pickled: results
                                 # go to <results>/<task>_results.json (logged once)
        self.qa_preds_file = None  # QA predictions; None:
                                   # <results>/{task}_qa/{task}_{split}_preds.json
        self.qa_eval_file = None  # QA scores (EM, F1, ...) of a split; None:
                                  # <results>/{task}_qa/{task}_{split}_eval.json
        self.qa_na_file = None  # joint head: each question's lowest answerable logit; None:
                                # <results>/{task}_qa/{task}_{split}_null_odds.json
        self.test_predictions = None  # test-set predictions (any task); None: that split's preds
                                      # file

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
        if len(self.task_names) == 1 and self.task_names[0] in QA_TASKS:  # one QA task
            self._default("max_seq_length", 512, kwargs)
            self._default("num_train_epochs", 2.0, kwargs)
        if "eval_batch_size" in kwargs:  # eval_batch_size given
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
        need(isinstance(self.save_checkpoints_steps, int) and self.save_checkpoints_steps > 0,
             "save_checkpoints_steps must be an integer > 0")
        need(isinstance(self.save_checkpoints_secs, (int, float))
             and self.save_checkpoints_secs >= 0,
             "save_checkpoints_secs must be a number of seconds >= 0 (0: by steps only)")
        need(isinstance(self.log_every_steps, int) and self.log_every_steps > 0,
             "log_every_steps must be an integer > 0")
        check_accumulation(self, "fine-tuning hparams")
        need(0 <= self.warmup_proportion < 1, "warmup_proportion must be in [0, 1)")
        need(self.predict_batch_size > 0, "predict_batch_size must be > 0")
        need(not self.eval_each_checkpoint or (
            self.distribution != "multi_worker_mirrored" and not tpu.tpu_graph(self)),
             "eval_each_checkpoint scores dev on the chief between training steps: not with "
             "\"multi_worker_mirrored\" or the TPU graph (the results' final evaluation is "
             "there in any case)")
        need(self.loss_reduction in ("sum", "mean"), "loss_reduction must be \"sum\" "
             "(official) or \"mean\", got %r" % (self.loss_reduction,))
        need(self.beam_size >= 1, "beam_size must be >= 1")
        need(self.n_writes_test >= 0, "n_writes_test must be >= 0")
        need(self.doc_stride > 0 and self.max_query_length > 0, "doc_stride and "
             "max_query_length must be > 0")
        need(self.train_examples_per_label >= 0, "train_examples_per_label must be >= 0 "
             "(0: every training example), got %d" % self.train_examples_per_label)
        self._validate_rtd_prompt(need)

    def _validate_rtd_prompt(self, need):
        """The rtd-prompt keys among themselves; the template and words against the task
        and its vocab: finetune/rtd_prompt.py, when the task is built."""
        if self.zero_shot:
            need(self.use_rtd_prompt, "zero_shot needs \"use_rtd_prompt\": true (the "
                 "standard classification head would start untrained)")
            need(self.train_examples_per_label == 0, "zero_shot trains nothing: drop "
                 "train_examples_per_label (%d) or zero_shot" % self.train_examples_per_label)
            need(self.num_trials == 1, "zero_shot: num_trials must be 1 (nothing is random "
                 "without training: every trial would score the same), got %d"
                 % self.num_trials)
            need(self.distribution == "none", "zero_shot trains nothing: set distribution "
                 "to \"none\" (got %r)" % self.distribution)
        if not self.use_rtd_prompt:
            return
        need(self.model_type == "electra", "use_rtd_prompt scores with ELECTRA's pre-trained "
             "discriminator head, which model_type %r checkpoints lack: set \"model_type\": "
             "\"electra\"" % self.model_type)
        remedy = ("start from params/params_<task>_rtd_prompt.json (e.g. --hparams "
                  "params_chnsenticorp_rtd_prompt.json)")
        need(self.rtd_prompt_template.strip(), "use_rtd_prompt needs rtd_prompt_template "
             "(where the texts and the label word go): " + remedy)
        need(self.rtd_prompt_label_words, "use_rtd_prompt needs rtd_prompt_label_words "
             "(each label's word): " + remedy)

    def trial_model_dir(self, task_name, trial):
        """Fine-tuned checkpoints of one trial (1-based): <model_dir>_<trial>; task_name is
        the task, or the tasks' names joined by "_" for a multi-task model."""
        pattern = self.model_dir or os.path.join(self.pretrained_model_dir,
                                                 "finetuning_models", "{task}_model")
        return fill_path(pattern, task_name) + "_%d" % trial

    def preds_file(self, task_name, split, trial=1):
        """Predictions of a split: results/<task>_qa/<task>_<split>_preds.json for QA (the
        published README's place), results/<task>_<split>_preds.json otherwise; later trials
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
