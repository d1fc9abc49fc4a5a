"""Writes tests/fixtures/hf/: tiny Hugging Face models saved by transformers itself, in every
weight format the importer reads, and the outputs transformers computes for them.

This script is the only place torch and transformers are used, and it is NOT run by the
toolkit or by `make test`: it is run once, by hand, in a separate environment, and its small
outputs are committed. To remake the fixtures (versions as recorded in versions.json):

    python3.11 -m venv /tmp/hfref
    /tmp/hfref/bin/pip install torch "transformers==4.57.6" "tensorflow-cpu==2.19.*" \
        "tf-keras==2.19.*" safetensors h5py
    TF_USE_LEGACY_KERAS=1 /tmp/hfref/bin/python scripts/make_hf_fixtures.py tests/fixtures/hf
    /tmp/hfref/bin/python scripts/make_hf_fixtures.py --base-shaped /tmp/hf_base   # bench only

(transformers 5 dropped its TensorFlow classes, so the 4.x line writes tf_model.h5.)

What it writes, each model dir holding config.json + vocab.txt + one weight file layout:

    electra-discriminator/<format>/   ElectraForPreTraining  (embedding 16 != hidden 32:
                                      embeddings_project present)
    electra-generator/<format>/       ElectraForMaskedLM, the discriminator's generator: hidden
                                      8 (1/4), the same embeddings (copied from the
                                      discriminator, as the tied official checkpoints have)
    bert-mlm/<format>/                BertForMaskedLM (MacBERT, RoBERTa-wwm-ext, LERT uploads)
    bert-pretraining/safetensors/     BertForPreTraining (pooler and next-sentence head)
    electra-generator-untied/safetensors/   a generator whose embeddings differ from the
                                      discriminator's (the importer must refuse or record it)

<format> is one of
    safetensors        model.safetensors (save_pretrained's default)
    sharded            model-0000i-of-0000n.safetensors + model.safetensors.index.json
                       (the discriminator only; the generator is too small to shard)
    sharded-bin        pytorch_model-0000i-of-0000n.bin + pytorch_model.bin.index.json
    bin-zip            pytorch_model.bin, torch's zip format (safe_serialization=False)
    bin-legacy         pytorch_model.bin, torch's pre-1.6 format (_use_new_zipfile_
                       serialization=False), LayerNorm names gamma/beta as 2020 uploads have
    bin-no-prefix      pytorch_model.bin of the bare encoder's names (no `electra.` prefix:
                       an ElectraModel state dict) plus the head, zip format
    h5                 tf_model.h5 written by the TF class of transformers (from_pt)

torch-views/{zip,legacy}.bin: tensors that are views of one storage (offset, transposed,
strided, float16), to check the torch reader's strides.
golden.npz: the fixed batch (input_ids, attention_mask, token_type_ids [2, 12]) and what
transformers computes on it in eval mode: disc_logits [2, 12], gen_logits [2, 12, V],
bert_sequence_output [2, 12, 32], bert_mlm_logits [2, 12, V], bert_pretraining_sequence_output.
versions.json: the versions of python, torch, transformers, tensorflow, safetensors, h5py.
"""

import json
import os
import platform
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import (BertConfig, BertForMaskedLM, BertForPreTraining, ElectraConfig,
                          ElectraForMaskedLM, ElectraForPreTraining)

VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
         + list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你"
                "好很差酒店房间服务员热情菜快下次还带朋友空调水前台说没别")
         + ["##a", "##b", "[unused1]"])
SHAPE = dict(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
             num_attention_heads=2, intermediate_size=64, max_position_embeddings=40,
             type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu", pad_token_id=0)


def init_weights(model, seed):
    """Every parameter random (normal, std 0.5 for weights; LayerNorm around 1): a
    mapping error shows in the outputs, which zero biases or unit LayerNorms would hide."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * 0.5
            param.copy_(1.0 + 0.2 * noise if "LayerNorm.weight" in name else noise)
    model.eval()
    return model


def vocab_of(size):
    """VOCAB, padded with [unusedN] tokens to size lines."""
    return VOCAB + ["[unused%d]" % i for i in range(2, 2 + size - len(VOCAB))]


def write_dir(path, model):
    os.makedirs(path, exist_ok=True)
    model.config.save_pretrained(path)
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab_of(model.config.vocab_size)) + "\n")


def save_formats(root, model, tf_class, formats):
    """One dir per weight format under root."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if "safetensors" in formats:
        write_dir(os.path.join(root, "safetensors"), model)
        model.save_pretrained(os.path.join(root, "safetensors"))
    if "sharded" in formats:
        write_dir(os.path.join(root, "sharded"), model)
        model.save_pretrained(os.path.join(root, "sharded"), max_shard_size="20KB")
    if "sharded-bin" in formats:
        write_dir(os.path.join(root, "sharded-bin"), model)
        model.save_pretrained(os.path.join(root, "sharded-bin"), max_shard_size="20KB",
                              safe_serialization=False)
    if "bin-zip" in formats:
        write_dir(os.path.join(root, "bin-zip"), model)
        model.save_pretrained(os.path.join(root, "bin-zip"), safe_serialization=False)
    if "bin-legacy" in formats:
        path = os.path.join(root, "bin-legacy")
        write_dir(path, model)
        legacy = {k.replace("LayerNorm.weight", "LayerNorm.gamma")
                  .replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in state.items()}
        torch.save(legacy, os.path.join(path, "pytorch_model.bin"),
                   _use_new_zipfile_serialization=False)
    if "bin-no-prefix" in formats:
        path = os.path.join(root, "bin-no-prefix")
        write_dir(path, model)
        bare = {k[len("electra."):] if k.startswith("electra.") else k: v
                for k, v in state.items()}
        torch.save(bare, os.path.join(path, "pytorch_model.bin"))
    if "h5" in formats:
        path = os.path.join(root, "h5")
        write_dir(path, model)
        tf_model = tf_class.from_pretrained(os.path.join(root, "safetensors"), from_pt=True)
        tf_model.save_pretrained(path, safe_serialization=False)
        for name in os.listdir(path):  # keep tf_model.h5 + config.json + vocab only
            if name not in ("tf_model.h5", "config.json", "vocab.txt"):
                os.remove(os.path.join(path, name))


def main(out):
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    all_formats = ("safetensors", "sharded", "sharded-bin", "bin-zip", "bin-legacy",
                   "bin-no-prefix", "h5")
    import transformers as tr
    disc_config = ElectraConfig(embedding_size=16, **SHAPE)
    disc = init_weights(ElectraForPreTraining(disc_config), 1)
    gen_config = ElectraConfig(embedding_size=16, **dict(
        SHAPE, hidden_size=8, num_attention_heads=1, intermediate_size=32))
    gen = init_weights(ElectraForMaskedLM(gen_config), 2)
    with torch.no_grad():  # the shared embeddings of the official checkpoints
        for part in ("word_embeddings", "position_embeddings", "token_type_embeddings",
                     "LayerNorm"):
            for name, param in getattr(gen.electra.embeddings, part).named_parameters():
                param.copy_(getattr(getattr(disc.electra.embeddings, part), name))
    bert_config = BertConfig(**SHAPE)
    bert = init_weights(BertForMaskedLM(bert_config), 3)
    bert_pt = init_weights(BertForPreTraining(bert_config), 4)
    untied = init_weights(ElectraForMaskedLM(gen_config), 5)

    save_formats(os.path.join(out, "electra-discriminator"), disc,
                 tr.TFElectraForPreTraining, all_formats)
    save_formats(os.path.join(out, "electra-generator"), gen, tr.TFElectraForMaskedLM,
                 [f for f in all_formats if not f.startswith("sharded")])  # too small
    save_formats(os.path.join(out, "bert-mlm"), bert, tr.TFBertForMaskedLM,
                 ("safetensors", "bin-zip", "bin-legacy", "h5"))
    save_formats(os.path.join(out, "bert-pretraining"), bert_pt, None, ("safetensors",))
    save_formats(os.path.join(out, "electra-generator-untied"), untied, None,
                 ("safetensors",))

    # Views into one storage (offsets, strides), as tied or sliced tensors are saved:
    # np.arange(24).reshape(4, 6) as float32 [1:], .T and [:, 2].
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    views = {"offset": base[1:], "transposed": base.t(), "column": base[:, 2],
             "half": base.half()[2]}
    os.makedirs(os.path.join(out, "torch-views"))
    torch.save(views, os.path.join(out, "torch-views", "zip.bin"))
    torch.save(views, os.path.join(out, "torch-views", "legacy.bin"),
               _use_new_zipfile_serialization=False)

    input_ids = torch.tensor([[2, 5, 9, 14, 20, 33, 41, 3, 50, 51, 3, 0],
                              [2, 7, 8, 9, 10, 11, 3, 0, 0, 0, 0, 0]])
    attention_mask = (input_ids != 0).long()
    token_type_ids = torch.tensor([[0] * 8 + [1, 1, 1, 0], [0] * 12])
    batch = dict(input_ids=input_ids, attention_mask=attention_mask,
                 token_type_ids=token_type_ids)
    with torch.no_grad():
        golden = {
            "input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy(),
            "token_type_ids": token_type_ids.numpy(),
            "disc_logits": disc(**batch).logits.numpy(),
            "gen_logits": gen(**batch).logits.numpy(),
            "bert_sequence_output": bert.bert(**batch).last_hidden_state.numpy(),
            "bert_mlm_logits": bert(**batch).logits.numpy(),
            "bert_pretraining_sequence_output":
                bert_pt.bert(**batch).last_hidden_state.numpy(),
        }
    np.savez(os.path.join(out, "golden.npz"), **golden)
    import h5py
    import safetensors
    import tensorflow
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tensorflow": tensorflow.__version__, "safetensors": safetensors.__version__,
                "h5py": h5py.__version__, "numpy": np.__version__}
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump(versions, f, indent=2, sort_keys=True)
        f.write("\n")
    print("wrote %s with %s" % (out, versions))


def base_shaped(out):
    """ELECTRA-base-shaped random pair (vocab 21,128; the published HF configs' shapes) for
    bench/import_hf.py: model.safetensors and pytorch_model.bin (zip) of each; not
    committed (about 1 GB)."""
    shape = dict(SHAPE, vocab_size=21128, max_position_embeddings=512)
    disc_config = ElectraConfig(**dict(shape, embedding_size=768, hidden_size=768,
                                       num_hidden_layers=12, num_attention_heads=12,
                                       intermediate_size=3072))
    gen_config = ElectraConfig(**dict(shape, embedding_size=768, hidden_size=192,
                                      num_hidden_layers=12, num_attention_heads=3,
                                      intermediate_size=768))
    disc = ElectraForPreTraining(disc_config).eval()
    gen = ElectraForMaskedLM(gen_config).eval()
    gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
    for name, model in (("discriminator", disc), ("generator", gen)):
        for fmt, safe in (("safetensors", True), ("bin-zip", False)):
            path = os.path.join(out, name, fmt)
            write_dir(path, model)
            model.save_pretrained(path, safe_serialization=safe)
    print("wrote %s" % out)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--base-shaped":
        base_shaped(sys.argv[2])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/hf")
