#!/usr/bin/env bash
# The CPU-sized own-data path of docs/own-data.md, end to end: your text -> tfrecords ->
# a small ELECTRA pre-trained in minutes -> fine-tuned on a labelled set -> exported.
# Here the 9,600 ChnSentiCorp training reviews from ../shared/data stand in for "your text"
# and ChnSentiCorp itself for "your labelled set". Run from the repo root after `make demo`
# (or `make venv`). Sizes come from the environment, so a test runs the same commands small:
#   D=dir REVIEWS=n PRETRAIN_HPARAMS='{...}' FINETUNE_HPARAMS='{...}' scripts/own_data_cpu.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
D=${D:-own_data}
SHARED=${SHARED:-../shared/data/chnsenticorp}
REVIEWS=${REVIEWS:-9600}                  # training reviews used (text and labels)
PRETRAIN_HPARAMS=${PRETRAIN_HPARAMS:-'{}'}  # on top of params/pretrain_cpu_minutes.json
FINETUNE_HPARAMS=${FINETUNE_HPARAMS:-'{"num_train_epochs": 3}'}

# 1. Your text: one sentence per line (split after 。！？), an empty line after each review
#    (one document each).
mkdir -p "$D/corpus" "$D/finetuning_data/chnsenticorp"
sed -n "2,$((REVIEWS + 1))p" "$SHARED/train.tsv" | cut -f2 \
    | sed 's/\([。！？]\)/\1\n/g; G' > "$D/corpus/reviews.txt"
cp sample_data/vocab.txt "$D/vocab.txt"
"$PY" build_pretraining_dataset.py --corpus-dir "$D/corpus" --vocab-file "$D/vocab.txt" \
    --output-dir "$D/pretrain_tfrecords" --max-seq-length 128 --num-processes 2 --overwrite \
    --eval-share 0.02

# 2. Pre-train a 4-layer, 128-wide ELECTRA (params/pretrain_cpu_minutes.json), evaluated on
#    the 2% of examples held out above at every checkpoint.
"$PY" run_pretraining.py --data-dir "$D" --model-name small4x128 \
    --hparams params/pretrain_cpu_minutes.json "$PRETRAIN_HPARAMS"

# 3. Your labelled set: train.tsv (label, text_a) and dev.tsv; fine-tune with the shipped
#    params and your changes (the model's shape comes from its pretrain_hparams.json).
sed -n "1,$((REVIEWS + 1))p" "$SHARED/train.tsv" > "$D/finetuning_data/chnsenticorp/train.tsv"
cp "$SHARED/dev.tsv" "$D/finetuning_data/chnsenticorp/dev.tsv"
"$PY" run_finetuning.py --data-dir "$D" --model-name small4x128 \
    --hparams params_chnsenticorp.json "$FINETUNE_HPARAMS"

# 4. Export the fine-tuned model and predict two new reviews.
"$PY" export_savedmodel.py "$D/models/small4x128/finetuning_models/chnsenticorp_model_1" \
    --out "$D/exports/chnsenticorp" --overwrite
printf '%s\n' '{"text": "房间干净，服务周到，下次还住这里。"}' '{"text": "电脑用了两天就坏了，太失望了。"}' \
    | "$PY" predict.py "$D/exports/chnsenticorp"
