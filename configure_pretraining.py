"""Every pre-training hparam, with its default and what it does.

Override any of them with `--hparams '{"key": value}'` or a JSON file. Defaults are the
official ELECTRA ones (ELECTRA-small), except `vocab_size`, which is the Chinese BERT
vocab's 21,128. The Chinese ELECTRA models were trained with max_seq_length 512 and:
small lr 5e-4 batch 1024 1M steps; small-ex 5e-4/384/2M; base 2e-4/256/1M; large 1e-4/96/2M.
"""

import os

from model.optimization import check_hparams as check_accumulation
from model.precision import MIXED_PRECISION_CHOICES, choice_error
from model import configs
from util import distribute
from util import tpu
from util.errors import InputError
from util.hparams import check_known_keys, check_value_type

_DERIVED = ("max_predictions_per_seq",)
MASKING_CHOICES = ("distinct", "official")


class PretrainingConfig(object):
    """Defines pre-training hyperparameters."""

    def __init__(self, model_name, data_dir, **kwargs):
        # general
        self.model_name = model_name  # the model's name, set by --model-name (not --hparams):
                                      # its files go to D/models/<model_name>
        self.debug = False  # tiny batches and 20 steps, to check that things run
        self.do_train = True  # pre-train
        self.do_eval = False  # report generator/discriminator metrics on eval data
        self.eval_each_checkpoint = False  # with do_eval: also evaluate every checkpoint as it is
                                           # saved (a learning curve in unsup_results.json)
        self.seed = None  # graph-level random seed (masking, sampling, dropout); None = random

        # objective
        self.electra_objective = True  # False: plain BERT MLM with a full-size generator
        self.gen_weight = 1.0  # weight of the generator's masked-LM loss
        self.disc_weight = 50.0  # weight of the discriminator's replaced-token loss
        self.mask_prob = 0.15  # share of tokens masked per example; max_predictions_per_seq =
                               # int((mask_prob + 0.005) x max_seq_length)
        self.masking = "distinct"  # token positions to mask: "distinct" draws exactly n different
                                   # positions per example; "official" draws n with replacement as
                                   # the official code does (a position drawn twice gets the floor
                                   # of the mean of its generator samples; docs/pretraining.md
                                   # "Masking")
        self.whole_word_masking = False  # mask whole words (tfrecords built with --segmenter,
                                         # which have word_starts); for the ELECTRA generator and
                                         # BERT MLM alike
        self.ngram_max = 1  # whole-word mode: mask runs of up to this many words (1-4)
        self.ngram_probs = [0.4, 0.3, 0.2, 0.1]  # probabilities of runs of 1, 2, 3, 4 words; the
                                                 # first ngram_max are used, normalised
        self.lert_objective = False  # LERT: BERT MLM (electra_objective False, whole_word_masking
                                     # True) plus POS/NER/DEP heads (tfrecords built with
                                     # --linguistic-labels)
        self.lert_pos_steps = None  # T_POS: the POS loss weight is min(1, step / T_POS); None =
                                    # num_train_steps / 6
        self.lert_ner_steps = None  # T_NER, likewise; None = num_train_steps / 3
        self.lert_dep_steps = None  # T_DEP, likewise; None = num_train_steps / 2

        # optimisation
        self.learning_rate = 5e-4  # peak learning rate (ELECTRA-small)
        self.lr_decay_power = 1.0  # polynomial decay power to 0 after warm-up (1 = linear)
        self.weight_decay_rate = 0.01  # AdamW decoupled weight decay (not on LayerNorm/bias)
        self.num_warmup_steps = 10000  # linear warm-up steps
        self.optimizer = "adamw"  # "adamw" (official) or "lamb": AdamW's update times the layer-wise
                                  # trust ratio ||w|| / ||update|| (large batches; not official)
        self.gradient_accumulation_steps = 1  # k: an update sums k micro-batches of
                                              # train_batch_size / k; steps count updates

        # training loop
        self.iterations_per_loop = 200  # TPU steps per host loop (TPU only)
        self.save_checkpoints_steps = 1000  # write a checkpoint every this many steps
        self.save_checkpoints_secs = 0  # also one once this many seconds have passed
                                        # (each evaluated with eval_each_checkpoint); 0: off
        self.keep_checkpoint_max = 5  # newest checkpoints kept; 0 keeps all
        self.save_graph_def = True  # also write graph.pbtxt and a .meta per checkpoint (the
                                    # Estimator's files; TensorBoard reads the graph from the
                                    # event file either way): false saves seconds per start
        self.num_train_steps = 1000000  # total steps; a restarted run continues up to it
        self.num_eval_steps = 100  # batches evaluated by do_eval
        self.log_every_steps = 100  # steps between progress lines (and TensorBoard scalars)
        self.init_checkpoint = None  # warm-start weights (e.g. a released model) for a fresh run
        self.init_checkpoint_step = None  # with init_checkpoint, where the schedule starts: None =
                                          # step 0 (warm-up, decay to 0 at num_train_steps); N =
                                          # step N (a released model's steps, e.g. 1000000 for
                                          # small), warming up again from there; "checkpoint" =
                                          # init_checkpoint's global_step

        # model
        self.model_size = "small"  # tiny, small, small_ex (or small-ex), base or large
                                   # (config/<size>_*.json)
        self.model_hparam_overrides = {}  # changes to the transformer shape, e.g.
                                          # {"num_hidden_layers": 6}
        self.embedding_size = None  # None: the size config's embedding_size
        self.vocab_size = 21128  # must equal the number of lines of vocab_file
        self.do_lower_case = True  # as used when the tfrecords were built (informational)

        # generator
        self.uniform_generator = False  # sample fakes uniformly at random (ablation)
        self.untied_generator_embeddings = False  # True: generator gets its own embeddings
        self.untied_generator = True  # False: generator and discriminator share all weights
        self.generator_layers = 1.0  # generator depth as a fraction of the discriminator's
        self.generator_hidden_size = 0.25  # generator width as a fraction (Chinese ELECTRA: 1/4)
        self.disallow_correct = False  # never sample the original token at a masked position
        self.temperature = 1.0  # generator sampling temperature

        # batches
        self.max_seq_length = 128  # must match the tfrecords (Chinese ELECTRA used 512)
        self.train_batch_size = 128  # sequences per step
        self.eval_batch_size = 128  # sequences per eval step
        self.shuffle_buffer_size = 1000  # training examples shuffled together by the input
                                         # pipeline (the official code used 100)

        # speed
        # model/precision.py; docs/scaling.md "Speed: mixed precision and XLA"
        self.use_xla = False  # compile the training graph with XLA (CPU and GPU; TPUs always do)
        self.mixed_precision = "none"  # "bf16": encoder matmuls/activations in bfloat16 (CPU, TPU,
                                       # recent GPUs); "fp16": float16 with dynamic loss scaling
                                       # (GPU only); weights and checkpoints stay float32

        # several GPUs or hosts
        # tf.distribute (docs/scaling.md); train_batch_size stays the global batch
        self.distribution = "none"  # "mirrored": data-parallel over this machine's GPUs;
                                    # "multi_worker_mirrored": over the hosts in TF_CONFIG
        self.num_gpus = 0  # with "mirrored": use the first num_gpus GPUs; 0 = every visible GPU
        self.mirrored_devices = []  # with "mirrored": explicit device list, e.g. ["/cpu:0",
                                    # "/cpu:1"] (the tests' two logical CPUs); [] = by num_gpus
        self.per_example_randomness = False  # seed each example's masking and generator sampling
                                             # by its tokens and the step, and shuffle the data
                                             # with seed: the run does not depend on how batches
                                             # are split over devices (token masking only)

        # TPU
        self.use_tpu = False  # run with TPUEstimator on a Cloud TPU
        self.use_tpu_estimator = False  # build the TPU graph (TPUEstimator with use_tpu=False,
                                        # TPUEstimatorSpec, params["batch_size"] input functions,
                                        # the eval_metrics tuple, one-hot embedding lookups, warm
                                        # start in a scaffold_fn) and run it on this machine's
                                        # CPU/GPU, as the official code runs on GPUs; the tests use
                                        # it to exercise the TPU path without a TPU. Progress lines
                                        # show step, speed and ETA but no losses, and there are no
                                        # TensorBoard scalars (a TPU's tensors stay on the device;
                                        # a TPU graph has no summaries); distribution must be
                                        # "none"
        self.num_tpu_cores = 1  # TPU cores to use; with use_tpu the batch sizes are global and
                                # must be multiples of it
        self.tpu_job_name = None  # TPU worker job name
        self.tpu_name = None  # Cloud TPU name
        self.tpu_zone = None  # GCE zone of the Cloud TPU
        self.gcp_project = None  # GCP project of the Cloud TPU

        # data locations
        # defaults follow the official layout under the data dir D
        tfrecords = os.path.join(data_dir, "pretrain_tfrecords", "pretrain_data.tfrecord*")
        self.pretrain_tfrecords = tfrecords  # training data: comma-separated globs
        self.eval_tfrecords = None  # globs for do_eval; None: the examples the builder held
                                    # out beside pretrain_tfrecords (--eval-share), else
                                    # pretrain_tfrecords themselves (as the official code)
        self.vocab_file = os.path.join(data_dir, "vocab.txt")  # WordPiece vocab
        self.spm_model_file = None  # SentencePiece model instead of vocab_file
        self.model_dir = os.path.join(data_dir, "models", model_name)  # checkpoints, summaries,
                                                                       # results
        self.results_txt = None  # eval lines, appended; None:
                                 # <model_dir>/results/unsup_results.txt
        self.results_json = None  # eval history as JSON; None:
                                  # <model_dir>/results/unsup_results.json
        self.results_pkl = None  # accepted for official params files; nothing is pickled
                                 # (results_json holds the results; logged once)

        self.update(kwargs)
        results = os.path.join(self.model_dir, "results")
        self.results_txt = self.results_txt or os.path.join(results, "unsup_results.txt")
        self.results_json = self.results_json or os.path.join(results, "unsup_results.json")
        self.max_predictions_per_seq = int((self.mask_prob + 0.005) * self.max_seq_length)
        if self.debug:
            self.train_batch_size = 8
            self.num_train_steps = 20
            self.num_warmup_steps = 2
            self.eval_batch_size = 4
            self.iterations_per_loop = 1
            self.num_eval_steps = 2
            self.update(kwargs)  # explicit hparams win over debug defaults
        self.model_size = self.model_size.replace("-", "_")
        self._validate()

    def update(self, kwargs):
        for key in _DERIVED:
            if key in kwargs:
                raise InputError("pre-training hparams: %s is derived from mask_prob and "
                                 "max_seq_length (int((mask_prob + 0.005) * max_seq_length)); "
                                 "set those instead" % key)
        check_known_keys(kwargs, [k for k in self.__dict__ if k not in _DERIVED],
                         "pre-training hparams")
        for key, value in kwargs.items():
            self.__dict__[key] = check_value_type(key, value, self.__dict__[key],
                                                  "pre-training hparams")

    def _validate(self):
        def need(cond, msg):
            if not cond:
                raise InputError("pre-training hparams: " + msg)
        need(0 < self.mask_prob < 1, "mask_prob must be in (0, 1), got %r" % self.mask_prob)
        need(self.mixed_precision in MIXED_PRECISION_CHOICES, choice_error(self.mixed_precision))
        need(self.max_seq_length >= 8, "max_seq_length must be >= 8")
        need(self.train_batch_size > 0 and self.eval_batch_size > 0, "batch sizes must be > 0")
        need(self.num_train_steps > 0, "num_train_steps must be > 0")
        need(self.save_checkpoints_steps > 0, "save_checkpoints_steps must be > 0")
        need(isinstance(self.save_checkpoints_secs, (int, float))
             and self.save_checkpoints_secs >= 0,
             "save_checkpoints_secs must be a number of seconds >= 0 (0: off)")
        need(self.log_every_steps > 0, "log_every_steps must be > 0")
        need(self.learning_rate > 0, "learning_rate must be > 0")
        need(self.num_warmup_steps >= 0, "num_warmup_steps must be >= 0")
        need(0 < self.generator_hidden_size <= 1 and 0 < self.generator_layers <= 1,
             "generator_hidden_size and generator_layers are fractions in (0, 1]")
        need(self.temperature > 0, "temperature must be > 0")
        need(self.masking in MASKING_CHOICES, "masking must be one of %s, got %r"
             % (", ".join(MASKING_CHOICES), self.masking))
        need(self.masking == "distinct" or not (self.whole_word_masking
                                                or self.per_example_randomness),
             "masking \"official\" draws token positions with the graph's random op: set "
             "\"whole_word_masking\" and \"per_example_randomness\" to false with it")
        need(self.shuffle_buffer_size >= 1, "shuffle_buffer_size must be >= 1")
        check_accumulation(self, "pre-training hparams")
        step = self.init_checkpoint_step
        need(step is None or step == "checkpoint" or (
            isinstance(step, int) and not isinstance(step, bool) and 0 <= step),
            "init_checkpoint_step must be null, an integer >= 0 or \"checkpoint\", got %r"
            % (step,))
        need(step is None or self.init_checkpoint, "init_checkpoint_step needs init_checkpoint "
             "(the checkpoint whose schedule the run continues)")
        need(not isinstance(step, int) or step < self.num_train_steps,
             "init_checkpoint_step %r is not below num_train_steps %d: nothing would be "
             "trained; raise num_train_steps past it (the schedule decays to 0 there)"
             % (step, self.num_train_steps))
        distribute.check_hparams(self, "pre-training hparams")
        tpu.check_hparams(self, "pre-training hparams")
        need(not (self.distribution == "multi_worker_mirrored" and self.eval_each_checkpoint),
             "eval_each_checkpoint cannot run with \"multi_worker_mirrored\" (the other "
             "hosts would wait in the next all-reduce while the chief evaluates): evaluate "
             "the final checkpoint instead")
        need(not (self.per_example_randomness and self.whole_word_masking),
             "per_example_randomness covers token masking only: set \"whole_word_masking\": "
             "false with it")
        need(1 <= self.ngram_max <= len(self.ngram_probs) and self.ngram_max <= 4,
             "ngram_max must be 1-4 with at least that many ngram_probs, got %r and %r"
             % (self.ngram_max, self.ngram_probs))
        need(all(isinstance(p, (int, float)) and p > 0
                 for p in self.ngram_probs[:self.ngram_max]),
             "ngram_probs must be positive numbers, got %r" % (self.ngram_probs,))
        need(self.ngram_max == 1 or self.whole_word_masking,
             "ngram_max > 1 masks runs of whole words: set \"whole_word_masking\": true")
        if self.lert_objective:
            need(not self.electra_objective, "lert_objective is BERT MLM plus linguistic "
                 "heads: set \"electra_objective\": false")
            need(self.whole_word_masking, "lert_objective masks whole words: set "
                 "\"whole_word_masking\": true (tfrecords built with --segmenter jieba "
                 "--linguistic-labels)")
        # The model shapes now, not as a reshape error in the graph: a degenerate override
        # (e.g. num_hidden_layers 0) or a generator fraction leaving no layer.
        disc = configs.discriminator_config(self)
        if self.electra_objective and self.untied_generator and not self.uniform_generator:
            configs.generator_config(self, disc)
        for key in ("lert_pos_steps", "lert_ner_steps", "lert_dep_steps"):
            value = getattr(self, key)
            need(value is None or (isinstance(value, int) and not isinstance(value, bool)
                                   and value > 0),
                 "%s must be a positive number of steps or null, got %r" % (key, value))

    def ngram_distribution(self):
        """P(a masked run has 1..ngram_max words): ngram_probs[:ngram_max], normalised."""
        probs = [float(p) for p in self.ngram_probs[:self.ngram_max]]
        return tuple(p / sum(probs) for p in probs)

    def lert_schedule_steps(self):
        """T_POS, T_NER, T_DEP: lambda_i = min(1, step / T_i) (LERT's LIP schedule)."""
        defaults = (6, 3, 2)
        return tuple(max(1, getattr(self, key) or self.num_train_steps // div)
                     for key, div in zip(("lert_pos_steps", "lert_ner_steps",
                                          "lert_dep_steps"), defaults))

    def to_dict(self):
        return dict(self.__dict__)
