"""Whole-word masking: word_starts in the builder (--segmenter ref/jieba) and in-graph masking."""

import json

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import build_pretraining_dataset as bpd
import run_pretraining
from corpus.example_builder import FEATURE_NAMES
from model import tokenization
from pretrain import pretrain_data
from pretrain import pretrain_helpers
from tests.conftest import SAMPLE_VOCAB, shared_file

CLS, SEP, MASK = 101, 102, 103

# Hand-segmented lines (words separated by spaces), with English, digits and punctuation.
REF_LINES = [
    "我们 在 北京大学 学习 自然语言处理 。",
    "他 昨天 买 了 一 部 iPhone 手机 ， 花 了 5000 元 。",
    "",
    "中国 科学技术大学 位于 合肥 。",
    "机器 学习 hello world 很 有趣 。",
]


def build(tmp_path, lines, ref_lines=None, extra=(), name="out"):
    """Builds tfrecords from one corpus file; returns (status, examples, info)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "a.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["--corpus-dir", str(corpus), "--vocab-file", str(SAMPLE_VOCAB),
            "--output-dir", str(tmp_path / name), "--max-seq-length", "64", "--seed", "1"]
    if ref_lines is not None:
        (tmp_path / "a.ref").write_text("\n".join(ref_lines) + "\n", encoding="utf-8")
        args += ["--segmenter", "ref", "--ref-file", str(tmp_path / "a.ref")]
    status = bpd.main(args + list(extra))
    if status != 0:
        return status, None, None
    examples = []
    for path in sorted((tmp_path / name).glob("pretrain_data.tfrecord*")):
        for record in tf.io.tf_record_iterator(str(path)):
            feature = tf.train.Example.FromString(record).features.feature
            examples.append({k: list(v.int64_list.value) for k, v in feature.items()})
    info = json.loads((tmp_path / name / "dataset_info.json").read_text())
    return status, examples, info


def words_of(example, tokenizer):
    """The example's words as token lists, cut at word_starts."""
    n = sum(example["input_mask"])
    tokens = tokenizer.convert_ids_to_tokens(example["input_ids"][:n])
    words = []
    for token, start in zip(tokens, example["word_starts"][:n]):
        if start:
            words.append([])
        words[-1].append(token)
    return ["".join(t.replace("##", "") for t in w) for w in words]


def corpus_lines():
    """REF_LINES as running text: spaces only between the Latin words."""
    return [line.replace(" ", "").replace("helloworld", "hello world") for line in REF_LINES]


def test_ref_segmentation_becomes_word_starts(tmp_path):
    lines = corpus_lines()
    status, examples, info = build(tmp_path, lines, REF_LINES)
    assert status == 0
    tokenizer = tokenization.FullTokenizer(str(SAMPLE_VOCAB))
    expected = [w.lower() for line in REF_LINES for w in line.split()]
    got = [w for e in examples for w in words_of(e, tokenizer) if w not in ("[CLS]", "[SEP]")]
    assert sorted(got) == sorted(expected)
    assert "北京大学" in got and "5000" in got and "iphone" in got
    assert info["whole_word"]["boundary_mismatches"] == 0
    assert info["segmenter"] == "ref" and "word_starts" in info["features"]
    # Same ids as a build without a segmenter: segmentation adds a feature, nothing else.
    _, plain, _ = build(tmp_path, lines, name="plain")
    assert [e["input_ids"] for e in plain] == [e["input_ids"] for e in examples]
    assert all(set(e) == set(FEATURE_NAMES) for e in plain)


def test_word_boundary_inside_a_token_falls_back_and_is_counted(tmp_path, capsys):
    # "hello" is one WordPiece token: the ref's "hel lo" puts a boundary inside it.
    lines = ["我们说hello。", "他们说world。"]
    refs = ["我们 说 hel lo 。", "他们 说 world 。"]
    status, examples, info = build(tmp_path, lines, refs)
    assert status == 0
    assert info["whole_word"]["boundary_mismatches"] == 1
    assert "word boundaries inside a WordPiece token (token-level starts used there): 1" \
        in capsys.readouterr().out
    tokenizer = tokenization.FullTokenizer(str(SAMPLE_VOCAB))
    words = words_of(examples[0], tokenizer)
    assert "hello" in words and "我们" in words


def test_ref_file_mismatches_name_file_and_line(tmp_path, capsys):
    lines = corpus_lines()
    bad_text = list(REF_LINES)
    bad_text[3] = "中国 科学 大学 位于 合肥 。"
    assert build(tmp_path, lines, bad_text)[0] == 2
    err = capsys.readouterr().err
    assert "a.ref:4: the words" in err and "a.txt:4" in err
    assert build(tmp_path, lines, REF_LINES[:-1])[0] == 2
    err = capsys.readouterr().err
    assert "differ in length" in err and "a.txt has a line 5" in err
    assert not (tmp_path / "out").exists()  # nothing written before the check
    assert bpd.main(["--corpus-dir", str(tmp_path / "corpus"), "--vocab-file",
                     str(SAMPLE_VOCAB), "--output-dir", str(tmp_path / "o"),
                     "--segmenter", "ref"]) == 2
    assert "--segmenter ref needs --ref-file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tnews_lines():
    path = shared_file("data", "tnews", "train.tsv")
    with open(path, encoding="utf-8") as f:
        titles = [line.split("\t")[0].strip() for _, line in zip(range(300), f)]
    # Documents of 5 titles each.
    return [t for i, t in enumerate(titles) for t in ([t, ""] if i % 5 == 4 else [t])]


def test_jieba_segments_real_news_and_both_tokenizers_agree(tmp_path, tnews_lines):
    outputs = {}
    for kind in ("fast", "python"):
        status, examples, info = build(tmp_path, tnews_lines, name=kind, extra=[
            "--segmenter", "jieba", "--tokenizer", kind])
        assert status == 0
        outputs[kind] = examples
    assert outputs["fast"] == outputs["python"]
    tokenizer = tokenization.FullTokenizer(str(SAMPLE_VOCAB))
    words = [w for e in outputs["fast"] for w in words_of(e, tokenizer)]
    multi = [w for w in words if len(w) > 1 and tokenization.is_cjk_char(w[0])]
    assert len(multi) > 0.3 * len(words)  # jieba finds multi-character words
    assert info["whole_word"]["words"] > 2000
    # jieba and WordPiece rarely disagree on news titles.
    assert info["whole_word"]["boundary_mismatches"] < 0.01 * info["stats"]["tokens"]
    assert info["whole_word"]["unaligned_tokens"] == 0


# ----------------------------------------------------------------------------- masking

MAX_LEN = 64
MASK_PROB = 0.15
N_SLOTS = int((MASK_PROB + 0.005) * MAX_LEN)


def random_batch(rng, batch_size=32):
    """Examples with random word lengths (1-4 tokens): ids, input_mask, word_starts."""
    ids = np.zeros([batch_size, MAX_LEN], np.int32)
    mask = np.zeros_like(ids)
    starts = np.zeros_like(ids)
    for b in range(batch_size):
        length = int(rng.integers(20, MAX_LEN + 1))
        ids[b, :length] = rng.integers(1000, 5000, size=length)
        mask[b, :length] = 1
        i = 1
        while i < length - 1:
            starts[b, i] = 1
            i += int(rng.choice([1, 2, 3, 4], p=[0.3, 0.4, 0.2, 0.1]))
        ids[b, 0], ids[b, length - 1] = CLS, SEP
        starts[b, [0, length - 1]] = 1
    return ids, mask, starts


def run_masking(batches, ngram_probs=(1.0,)):
    with tf.Graph().as_default():
        ph = [tf.placeholder(tf.int32, [None, MAX_LEN]) for _ in range(3)]
        inputs = pretrain_data.Inputs(ph[0], ph[1], tf.zeros_like(ph[0]), None, None, None)
        masked = pretrain_helpers.mask(inputs, MASK_PROB, N_SLOTS, MASK, [CLS, SEP, MASK],
                                       word_starts=ph[2], ngram_probs=ngram_probs)
        with tf.Session() as sess:
            return [sess.run(masked, dict(zip(ph, batch))) for batch in batches]


def word_spans(ids, mask, starts):
    """[(start, end)] of the maskable words of one example."""
    n = mask.sum()
    cut = [i for i in range(1, n - 1) if starts[i]] + [n - 1]
    return list(zip(cut[:-1], cut[1:]))


@pytest.fixture(scope="module")
def wwm_runs():
    rng = np.random.default_rng(0)
    batches = [random_batch(rng) for _ in range(20)]
    return batches, run_masking(batches), run_masking(batches, (0.4, 0.3, 0.2, 0.1))


def test_chosen_words_are_masked_whole(wwm_runs):
    batches, single, ngram = wwm_runs
    for runs in (single, ngram):
        for (ids, mask, starts), out in zip(batches, runs):
            for b in range(len(ids)):
                w = out.masked_lm_weights[b] > 0
                chosen = set(out.masked_lm_positions[b][w].tolist())
                assert len(chosen) == w.sum() <= N_SLOTS
                for start, end in word_spans(ids[b], mask[b], starts[b]):
                    inside = set(range(start, end)) & chosen
                    assert not inside or inside == set(range(start, end)), (start, end)
                # Positions hold the original ids; the rest of the input is untouched.
                np.testing.assert_array_equal(out.masked_lm_ids[b][w],
                                              ids[b][out.masked_lm_positions[b][w]])


def test_masked_share_and_words_per_example(wwm_runs):
    batches, single, ngram = wwm_runs
    for runs, min_words in ((single, 3), (ngram, 1.5)):
        masked = tokens = 0
        words = []
        for (ids, mask, starts), out in zip(batches, runs):
            for b in range(len(ids)):
                chosen = set(out.masked_lm_positions[b][out.masked_lm_weights[b] > 0].tolist())
                masked += len(chosen)
                tokens += mask[b].sum()
                words.append(sum(start in chosen
                                 for start, _ in word_spans(ids[b], mask[b], starts[b])))
        share = masked / tokens
        assert abs(share - MASK_PROB) < 0.01, share
        assert np.mean(words) > min_words
    # N-gram masking takes runs of words: fewer, longer chosen spans per example.
    assert np.mean([o.masked_lm_weights.sum() for o in ngram]) > 0.9 * np.mean(
        [o.masked_lm_weights.sum() for o in single])


def test_whole_word_masking_needs_word_starts_in_the_tfrecords(sample_data_dir, capsys):
    status = run_pretraining.main([
        "--data-dir", str(sample_data_dir), "--model-name", "wwm_missing", "--hparams",
        json.dumps({"model_size": "tiny", "max_seq_length": 128, "whole_word_masking": True,
                    "num_train_steps": 1})])
    assert status == 2
    err = capsys.readouterr().err
    assert "records lack the feature(s) word_starts needed for whole_word_masking" in err
    assert "pretrain_data.tfrecord-0-of-2" in err and "--segmenter jieba" in err
    assert not (sample_data_dir / "models" / "wwm_missing" / "checkpoint").exists()


def test_ngram_max_needs_whole_word_masking():
    import configure_pretraining
    from util.errors import InputError
    with pytest.raises(InputError, match="whole_word_masking"):
        configure_pretraining.PretrainingConfig("m", "/d", ngram_max=3)
    config = configure_pretraining.PretrainingConfig("m", "/d", ngram_max=2,
                                                     whole_word_masking=True)
    assert config.ngram_distribution() == pytest.approx((0.4 / 0.7, 0.3 / 0.7))
