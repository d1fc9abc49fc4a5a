"""What every fine-tuning task provides (pure Python: no TensorFlow here).

The runner (run_finetuning.py) drives a task like this:

    examples = task.get_examples("train")            # reads D/finetuning_data/<name>/train.*
    features = [f for ex in examples for f in task.featurize(ex, is_training=True)]
    ... serialise the keys of task.feature_specs() to tfrecords, train the model ...
    scorer = task.get_scorer("dev")
    for feature, outputs in zip(dev_features, model_outputs):   # one feature at a time
        scorer.update(feature, outputs)
    scorer.get_results()                             # {"accuracy": 72.5, "loss": 0.67}

A feature is a dict. The keys named in feature_specs() are int features the model reads
(ints or lists of ints of the declared length); any other key is metadata for the scorer
(e.g. QA's token-to-character map) and is never serialised. `outputs` is a dict of NumPy
values the task's prediction head produced for that feature (see finetune/heads.py):
classification {"logits": [num_labels], "loss": float}; tagging {"logits": [L, num_labels],
"loss": float}; QA with the joint head {"start_top_index": [K], "start_top_log_probs": [K],
"end_top_index": [K, K], "end_top_log_probs": [K, K], "answerable_logit", "loss"} (K =
beam_size), with joint_prediction false {"start_logits": [L], "end_logits": [L], "loss"}.
"""

import collections
import os

from util import fs
from util.errors import InputError

FeatureSpec = collections.namedtuple("FeatureSpec", ["name", "shape"])  # int64 features


class Example(object):
    """One labelled (or unlabelled, for test sets) input of a task."""

    def __init__(self, eid, task_name, **fields):
        self.eid = eid  # index of the example within its split
        self.task_name = task_name
        self.__dict__.update(fields)

    def __repr__(self):
        return "Example(%r)" % self.__dict__


class Task(object):
    """Base class: a named task reading its data from D/finetuning_data/<name>/."""

    task_type = None  # "classification", "tagging" or "qa"
    head_name = None  # the head finetune/heads.py builds; None: the task type's
    model_suffix = ""  # added to the task's name in its trial dirs' (<task><suffix>_model_<i>)

    def __init__(self, config, name, tokenizer):
        self.config = config  # a FinetuningConfig: max_seq_length, data_dir, ...
        self.name = name
        self.tokenizer = tokenizer

    def data_dir(self):
        return os.path.join(self.config.raw_data_dir, self.name)

    def split_file(self, split, candidates):
        """The first existing file among candidates (names relative to the task's data dir,
        '{split}' filled in); InputError listing every path tried if none exists."""
        tried = []
        for pattern in candidates:
            path = os.path.join(self.data_dir(), pattern.format(split=split))
            if fs.isfile(path):  # local, gs:// or ram://
                return path
            tried.append(path)
        hint = ""
        if split == "test":  # often not public (CMRC 2018, DRCD's blind set, CLUE's)
            hint = ("; the test split is read because \"do_test\" or \"write_test_outputs\" "
                    "is true: set both to false if %s has no public test set" % self.name)
        raise InputError("%s: no %s file found; looked for %s%s"
                         % (self.name, split, ", ".join(tried), hint))

    split_files = ()  # candidate file names of a split, '{split}' filled in

    def files_for(self, split):
        """Candidate file names of split (relative to the task dir)."""
        return self.split_files

    def split_path(self, split):
        """The data file of split: the first of files_for(split) that exists."""
        return self.split_file(split, self.files_for(split))

    def get_examples(self, split):
        """All examples of split ("train", "dev" or "test")."""
        raise NotImplementedError()

    def is_labelled(self, example):
        """False for an example without a gold answer (an unlabelled test row)."""
        return True

    def repairs(self, split):
        """What reading split repaired or dropped, in words (reported at the end of a run)."""
        return []

    def unusable_note(self, split):
        """Why examples of split were dropped while reading, or "" (QA: answers not found)."""
        return ""

    def check_split(self, split, examples, need_labels):
        """InputError if split gives nothing to train on (or, need_labels, to score):
        an empty or header-only file must not turn into a metric or a trained-on-nothing
        model. Returns the number of labelled examples."""
        labelled = sum(1 for example in examples if self.is_labelled(example))
        path = self.split_path(split)
        if not examples:
            raise InputError("%s: %s holds no usable %s examples%s; check the file"
                             % (self.name, path, split, self.unusable_note(split)))
        if need_labels and not labelled:
            raise InputError("%s: %s has no labels, so the %s split cannot be %s; give a "
                             "labelled file" % (self.name, path, split,
                                                "trained on" if split == "train" else "scored"))
        return labelled

    def featurize(self, example, is_training):
        """List of feature dicts for one example (QA may give several: doc stride)."""
        raise NotImplementedError()

    def feature_specs(self):
        """List of FeatureSpec: the int features the model reads."""
        raise NotImplementedError()

    def get_scorer(self, split):
        """A fresh Scorer for evaluating split."""
        raise NotImplementedError()


class Scorer(object):
    """Accumulates per-feature model outputs; reports metrics (percentages, and loss)."""

    def __init__(self):
        self._losses = []

    def update(self, feature, outputs):
        self._losses.append(float(outputs["loss"]))

    def mean_loss(self):
        return sum(self._losses) / max(1, len(self._losses))

    def get_results(self):
        """dict of metric name -> value; accuracy-like metrics in percent (72.5)."""
        raise NotImplementedError()
