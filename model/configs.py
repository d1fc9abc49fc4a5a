"""The model shapes a run's hparams ask for: the discriminator (or BERT) from model_size,
model_hparam_overrides, embedding_size and vocab_size; the ELECTRA generator scaled from it.
`config` is any object with those attributes (a pre-training or fine-tuning config)."""

import copy

from model import modeling


def discriminator_config(config):
    """The discriminator (or BERT) shape: config/<size>_discriminator_config.json + overrides."""
    bert_config = modeling.BertConfig.for_model_size(config.model_size)
    overrides = dict(config.model_hparam_overrides)
    overrides["vocab_size"] = config.vocab_size
    if config.embedding_size is not None:
        overrides["embedding_size"] = config.embedding_size
    merged = bert_config.to_dict()
    merged.update(overrides)
    return modeling.BertConfig.from_dict(merged, source="model_hparam_overrides")


def generator_config(config, disc_config):
    """Generator = discriminator scaled by generator_hidden_size / generator_layers.

    Feed-forward width is 4x hidden and heads are hidden/64, as in the official code;
    for the released sizes this reproduces config/<size>_generator_config.json.
    """
    gen = copy.deepcopy(disc_config)
    gen.hidden_size = int(round(disc_config.hidden_size * config.generator_hidden_size))
    gen.num_hidden_layers = int(round(disc_config.num_hidden_layers * config.generator_layers))
    gen.intermediate_size = 4 * gen.hidden_size
    gen.num_attention_heads = max(1, gen.hidden_size // 64)
    gen.check_shape("pre-training hparams: the generator (generator_hidden_size %s and "
                    "generator_layers %s of the discriminator's %d x %d)"
                    % (config.generator_hidden_size, config.generator_layers,
                       disc_config.num_hidden_layers, disc_config.hidden_size))
    return gen
