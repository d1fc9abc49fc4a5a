"""Chinese ELECTRA toolkit: pre-training and fine-tuning ELECTRA/BERT/LERT encoders."""

from setuptools import find_packages, setup

setup(
    name="chinese-electra-toolkit",
    version="0.1.0",
    description="Pre-train and fine-tune Chinese ELECTRA-family encoders "
                "(tensorflow.compat.v1 graphs; TPUEstimator on TF 2.15)",
    python_requires=">=3.9,<3.14",
    packages=find_packages(include=["model", "pretrain", "finetune", "corpus", "util"]),
    py_modules=["configure_pretraining", "run_pretraining", "build_pretraining_dataset",
                "configure_finetuning", "run_finetuning", "runner_cli", "export_savedmodel",
                "predict", "cmrc2018_drcd_evaluate"],
    install_requires=[
        # 2.15.1 (the last with tf.estimator: the TPU paths; Python <= 3.11) to 2.21. Each
        # release pins the numpy it was built against (2.15: numpy < 2) itself.
        "tensorflow>=2.15.1,<2.22",
        "numpy",
        "scipy",
        "scikit-learn",
        "sentencepiece",
        "tokenizers>=0.15,<1",  # Rust WordPiece: the corpus builder's fast path
        "matplotlib",  # scripts/report.py's plots
        "tensorboard",  # `tensorboard --logdir D/models` (the demo and the docs name it)
        "safetensors",  # scripts/export_hf.py writes model.safetensors (numpy API, no torch)
        "jieba==0.42.1",  # --segmenter jieba: word boundaries and POS for whole-word masking / LERT (bundled dict, offline)
        "nltk==3.10.4",  # the CMRC 2018 metric's word tokenizer (finetune/cmrc_metric.py; no data needed)
    ],
    extras_require={"test": ["pytest", "pytest-xdist"]},
)
