"""The pre-training objectives: ELECTRA replaced-token detection and BERT masked LM.

ELECTRA step, for a batch of unmasked examples:
  1. mask ~15% of the real tokens (85% of them become [MASK]);
  2. the small generator predicts the masked tokens (MLM loss);
  3. a token is sampled from the generator at every masked position (no gradient
     flows back through the sampling), giving the "fake" input;
  4. the discriminator labels each real token of the fake input as original or
     replaced (sigmoid loss); a sample equal to the original counts as original.
  total loss = gen_weight * MLM loss + disc_weight * discriminator loss.
With electra_objective=False only steps 1-2 run, with a full-size model under Google
BERT's names (encoder `bert/`, MLM head `cls/predictions/transform/{dense,LayerNorm}` and
`cls/predictions/output_bias`, word embeddings tied): the BERT MLM objective, whose
checkpoints fine-tune with `"model_type": "bert"` like BERT-wwm/MacBERT/LERT ones.
With whole_word_masking, step 1 masks whole words (tfrecords with word_starts).
LERT (lert_objective) adds three linguistic heads on the MLM transform's output at the
masked positions: POS, NER and DEP classifiers, loss = MLM + sum_i lambda_i * L_i with
lambda_i = min(1, step / T_i) (the linguistically-informed schedule).
"""

import collections
import contextlib

import tensorflow.compat.v1 as tf

from model import configs
from model import linguistic_labels
from model import modeling
from model import precision
from pretrain import pretrain_data
from pretrain import pretrain_helpers
from util import tpu
from util.distribute import cross_replica_sum

MLMOutput = collections.namedtuple(
    "MLMOutput", ["logits", "probs", "per_example_loss", "loss", "preds", "transform",
                  "loss_parts"])
LinguisticOutput = collections.namedtuple(
    "LinguisticOutput", ["name", "loss", "weight", "preds", "labels", "label_weights",
                         "loss_parts"])

# (feature in the tfrecords, head variable under cls/predictions, labels), schedule order.
LINGUISTIC_TASKS = (("pos_ids", "output_pos_layer", linguistic_labels.POS_LABELS),
                    ("ner_ids", "output_ner_layer", linguistic_labels.NER_LABELS),
                    ("dep_ids", "output_dep_layer", linguistic_labels.DEP_LABELS))
DiscOutput = collections.namedtuple(
    "DiscOutput", ["loss", "per_example_loss", "probs", "preds", "labels", "loss_parts"])
# Each output's loss_parts: (sum of its position losses, the global count it is divided by):
# loss = sum / (count + 1e-6). Gradient accumulation adds both up over the micro-batches.


def global_count(weights):
    """sum(weights) over the whole global batch: on several replicas each loss is its share
    of the global mean (local sum / global count), so the replicas' losses and gradients
    add up to the one-device ones exactly. On one device: tf.reduce_sum(weights)."""
    return cross_replica_sum(tf.stop_gradient(tf.reduce_sum(weights)))


class PretrainingModel(object):
    """Builds the pre-training graph for one batch of features.

    special_ids: {"[MASK]": id, "[CLS]": id, "[SEP]": id} from the vocab.
    """

    def __init__(self, config, features, is_training, special_ids):
        self._config = config
        self._bert_config = configs.discriminator_config(config)
        embedding_size = self._bert_config.embedding_size or self._bert_config.hidden_size

        unmasked_inputs = pretrain_data.features_to_inputs(features)
        # per_example_randomness: noise keyed by each example, not by its batch or replica.
        self._keys = (pretrain_helpers.example_keys(unmasked_inputs.input_ids)
                      if config.per_example_randomness else None)
        masked_inputs = pretrain_helpers.mask(
            unmasked_inputs, config.mask_prob, config.max_predictions_per_seq,
            mask_id=special_ids["[MASK]"],
            disallowed_ids=[special_ids[t] for t in ("[CLS]", "[SEP]", "[MASK]")],
            word_starts=(features[pretrain_data.WORD_STARTS] if config.whole_word_masking
                         else None),
            ngram_probs=config.ngram_distribution(), keys=self._keys,
            with_replacement=config.masking == "official")
        self.masked_inputs = masked_inputs

        # Generator (or the full-size BERT MLM model).
        if config.uniform_generator:
            mlm_output = self._mlm_output(masked_inputs, None)
        elif config.electra_objective and config.untied_generator:
            gen_config = configs.generator_config(config, self._bert_config)
            untied = config.untied_generator_embeddings  # own table, as wide as its hidden
            generator = self._build_transformer(
                masked_inputs, is_training, gen_config, scope="generator",
                embedding_scope="generator" if untied else "electra",
                embedding_size=gen_config.hidden_size if untied else embedding_size)
            mlm_output = self._mlm_output(masked_inputs, generator)
        elif config.electra_objective:  # tied generator: the discriminator's own weights
            generator = self._build_transformer(masked_inputs, is_training, self._bert_config,
                                                scope="electra")
            mlm_output = self._mlm_output(masked_inputs, generator)
        else:  # BERT MLM under Google BERT's variable names
            generator = self._build_transformer(masked_inputs, is_training, self._bert_config,
                                                scope="bert", embedding_scope="bert")
            mlm_output = self._mlm_output(masked_inputs, generator, bert_names=True)
        self.mlm_output = mlm_output
        self.gen_loss = mlm_output.loss
        self.total_loss = config.gen_weight * mlm_output.loss
        # [(weight, numerator, count)]: total_loss = sum of weight * numerator / (count + 1e-6)
        self.loss_terms = [(config.gen_weight,) + mlm_output.loss_parts]

        # LERT's linguistic heads, each weighted by its schedule.
        self.linguistic_outputs = []
        if config.lert_objective:
            step = tf.cast(tf.train.get_or_create_global_step(), tf.float32)
            for (feature, head, labels), t in zip(LINGUISTIC_TASKS,
                                                  config.lert_schedule_steps()):
                weight = tf.minimum(1.0, step / float(t))  # lambda_i = min(1, step / T_i)
                out = self._linguistic_output(masked_inputs, mlm_output.transform,
                                              features[feature], head, labels, weight)
                self.linguistic_outputs.append(out)
                self.total_loss += weight * out.loss
                self.loss_terms.append((weight,) + out.loss_parts)

        # Discriminator.
        self.disc_output = None
        self.sampled_tokids = None
        if config.electra_objective:
            fake_inputs, is_fake, self.sampled_tokids = self._fake_data(
                masked_inputs, mlm_output.logits)
            discriminator = self._build_transformer(
                fake_inputs, is_training, self._bert_config, scope="electra",
                reuse=tf.AUTO_REUSE if not config.untied_generator else None)
            self.disc_output = self._discriminator_output(fake_inputs, discriminator, is_fake)
            self.total_loss += config.disc_weight * self.disc_output.loss
            self.loss_terms.append((config.disc_weight,) + self.disc_output.loss_parts)

    def _build_transformer(self, inputs, is_training, bert_config, scope,
                           embedding_scope="electra", embedding_size=None, reuse=None):
        with tf.variable_scope(tf.get_variable_scope(), reuse=reuse):
            return modeling.BertModel(
                bert_config, is_training, inputs.input_ids, inputs.input_mask,
                inputs.segment_ids, scope=scope, embedding_scope=embedding_scope,
                embedding_size=embedding_size, use_one_hot_embeddings=tpu.tpu_graph(self._config),
                compute_dtype=precision.compute_dtype(self._config.mixed_precision))

    def _mlm_output(self, inputs, model, bert_names=False):
        """Masked-LM head and loss at the masked positions: logits [B, N, V].

        ELECTRA names: generator_predictions/{dense,LayerNorm,output_bias}; BERT names
        (bert_names): cls/predictions/transform/{dense,LayerNorm}, cls/predictions/output_bias.
        """
        bert = self._bert_config
        transform = None
        with tf.variable_scope("cls/predictions" if bert_names else "generator_predictions"):
            if model is None:  # uniform generator: equal logits for every token
                logits = tf.zeros(modeling.get_shape_list(inputs.masked_lm_ids)
                                  + [bert.vocab_size])
            else:
                hidden = pretrain_helpers.gather_positions(
                    model.get_sequence_output(), inputs.masked_lm_positions)  # [B, N, H_gen]
                table = model.get_embedding_table()  # [V, E]
                with (tf.variable_scope("transform") if bert_names
                      else contextlib.nullcontext()):
                    hidden = modeling.dense(
                        hidden, table.shape[-1], "dense",
                        activation=modeling.get_activation(bert.hidden_act),
                        kernel_initializer=modeling.create_initializer(bert.initializer_range))
                    hidden = modeling.layer_norm(hidden, bert.layer_norm_eps)  # [B, N, E]
                transform = hidden
                output_bias = tf.get_variable("output_bias", [bert.vocab_size],
                                              initializer=tf.zeros_initializer())
                logits = tf.nn.bias_add(
                    tf.einsum("bne,ve->bnv", hidden, table), output_bias)  # [B, N, V]
            log_probs = tf.nn.log_softmax(logits)
            one_hot = tf.one_hot(inputs.masked_lm_ids, depth=bert.vocab_size, dtype=tf.float32)
            per_position_loss = -tf.reduce_sum(log_probs * one_hot, axis=-1)  # [B, N]
            weights = inputs.masked_lm_weights
            numerator, count = tf.reduce_sum(weights * per_position_loss), global_count(weights)
            return MLMOutput(logits=logits, probs=tf.exp(log_probs),
                             per_example_loss=per_position_loss, loss=numerator / (count + 1e-6),
                             preds=tf.argmax(log_probs, axis=-1, output_type=tf.int32),
                             transform=transform, loss_parts=(numerator, count))

    def _linguistic_output(self, inputs, transform, label_ids, head, labels, weight):
        """One LERT head (cls/predictions/<head>/{kernel,bias}) on the MLM transform [B, N, E].

        label_ids [B, L] hold label index + 1 per token, 0 = no label: those positions are
        ignored through the head's own mask, not the MLM weights, so a head without
        annotations (e.g. DEP without --dep-file) contributes exactly zero loss.
        """
        bert = self._bert_config
        with tf.variable_scope("cls/predictions", reuse=tf.AUTO_REUSE):
            logits = modeling.dense(
                transform, len(labels), head,
                kernel_initializer=modeling.create_initializer(bert.initializer_range))
        at_masked = pretrain_helpers.gather_positions(label_ids, inputs.masked_lm_positions)
        label_weights = inputs.masked_lm_weights * tf.cast(at_masked > 0, tf.float32)  # [B, N]
        targets = tf.maximum(at_masked - 1, 0)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        numerator, count = tf.reduce_sum(label_weights * losses), global_count(label_weights)
        return LinguisticOutput(name=head.split("_")[1], loss=numerator / (count + 1e-6),
                                weight=weight, preds=tf.argmax(logits, -1, output_type=tf.int32),
                                labels=targets, label_weights=label_weights,
                                loss_parts=(numerator, count))

    def _fake_data(self, masked_inputs, mlm_logits):
        """Replaces every masked position with a generator sample; labels what changed."""
        inputs = pretrain_helpers.unmask(masked_inputs)
        disallow = (tf.one_hot(masked_inputs.masked_lm_ids, depth=self._bert_config.vocab_size,
                               dtype=tf.float32) if self._config.disallow_correct else None)
        sampled = pretrain_helpers.sample_from_softmax(
            tf.stop_gradient(mlm_logits) / self._config.temperature, disallow=disallow,
            keys=self._keys)  # [B, N]
        fake_ids, updated = pretrain_helpers.scatter_update(
            inputs.input_ids, sampled, masked_inputs.masked_lm_positions)
        is_fake = updated * tf.cast(tf.not_equal(fake_ids, inputs.input_ids), tf.int32)
        return (pretrain_data.get_updated_inputs(inputs, input_ids=tf.stop_gradient(fake_ids)),
                is_fake, sampled)

    def _discriminator_output(self, inputs, discriminator, labels):
        """Per-token replaced/original classifier; loss over real (input_mask=1) tokens."""
        logits = modeling.discriminator_logits(discriminator.get_sequence_output(),
                                               self._bert_config)  # [B, L]
        weights = tf.cast(inputs.input_mask, tf.float32)
        losses = tf.nn.sigmoid_cross_entropy_with_logits(
            logits=logits, labels=tf.cast(labels, tf.float32)) * weights
        per_example_loss = tf.reduce_sum(losses, -1) / (1e-6 + tf.reduce_sum(weights, -1))
        numerator, count = tf.reduce_sum(losses), global_count(weights)
        return DiscOutput(loss=numerator / (1e-6 + count), per_example_loss=per_example_loss,
                          probs=tf.nn.sigmoid(logits), preds=tf.cast(logits > 0, tf.int32),
                          labels=labels, loss_parts=(numerator, count))

    def eval_tensors(self):
        """Tensors (batch-major) that metric_fn turns into evaluation metrics."""
        d = {
            "input_mask": self.masked_inputs.input_mask,
            "masked_lm_ids": self.masked_inputs.masked_lm_ids,
            "masked_lm_weights": self.masked_inputs.masked_lm_weights,
            "masked_lm_preds": self.mlm_output.preds,
            "mlm_loss": self.mlm_output.per_example_loss,
        }
        for out in self.linguistic_outputs:
            d.update({out.name + "_labels": out.labels, out.name + "_preds": out.preds,
                      out.name + "_weights": out.label_weights})
        if self.disc_output is not None:
            d.update(sampled_tokids=self.sampled_tokids,
                     disc_loss=self.disc_output.per_example_loss,
                     disc_labels=self.disc_output.labels,
                     disc_probs=self.disc_output.probs,
                     disc_preds=self.disc_output.preds)
        return d


def metric_fn(**d):
    """Generator MLM accuracy/loss; discriminator accuracy, precision, recall and AUC."""
    def flat(name):
        return tf.reshape(d[name], [-1])

    metrics = {
        "masked_lm_accuracy": tf.metrics.accuracy(
            flat("masked_lm_ids"), flat("masked_lm_preds"), weights=flat("masked_lm_weights")),
        "masked_lm_loss": tf.metrics.mean(flat("mlm_loss"), weights=flat("masked_lm_weights")),
    }
    for name in ("pos", "ner", "dep"):
        if name + "_labels" in d:
            metrics[name + "_accuracy"] = tf.metrics.accuracy(
                flat(name + "_labels"), flat(name + "_preds"), weights=flat(name + "_weights"))
    if "disc_labels" in d:
        real = tf.cast(flat("input_mask"), tf.float32)
        labels, preds = flat("disc_labels"), flat("disc_preds")
        metrics.update({
            "sampled_masked_lm_accuracy": tf.metrics.accuracy(
                flat("masked_lm_ids"), flat("sampled_tokids"),
                weights=flat("masked_lm_weights")),
            "disc_loss": tf.metrics.mean(d["disc_loss"]),
            "disc_accuracy": tf.metrics.accuracy(labels, preds, weights=real),
            "disc_precision": tf.metrics.precision(labels, preds, weights=real),
            "disc_recall": tf.metrics.recall(labels, preds, weights=real),
            # The official code's AUC, so that the figure means what it means in the
            # papers: over every position, padding included as an original with
            # probability 0 (below every real token), 200 thresholds. The padding share
            # lifts it well above the real tokens' AUC (0.58 -> 0.69 at step 2,000 in
            # docs/pretrain_dynamics.md).
            "disc_auc": tf.metrics.auc(labels * tf.cast(real, labels.dtype),
                                       flat("disc_probs") * real),
            # The AUC over real tokens only (padding weighted out): what the
            # discriminator actually separates; not comparable with published disc_auc.
            "disc_auc_real_tokens": tf.metrics.auc(labels, flat("disc_probs"), weights=real,
                                                   num_thresholds=1000),
        })
    return metrics
