"""util/quiet_tf.py drops TensorFlow's start-up lines (2.15's CUDA/oneDNN lines, 2.16+'s absl
line) and passes every other line of the import through."""

from util import quiet_tf

NOISE = [
    "2026-12-04 10:16:18.336799: E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:"
    "9261] Unable to register cuDNN factory: Attempting to register factory for plugin cuDNN "
    "when one has already been registered",
    "2026-12-04 10:16:18.287397: I external/local_tsl/tsl/cuda/cudart_stub.cc:31] Could not "
    "find cuda drivers on your machine, GPU will not be used.",
    "2026-12-04 10:16:19.286976: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] "
    "TF-TRT Warning: Could not find TensorRT",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
]
GENUINE = [
    "ImportError: libcudart.so.12: cannot open shared object file",
    "WARNING: the vocab has 3 tokens",
]


def test_start_up_noise_is_dropped_and_other_lines_kept():
    assert all(quiet_tf._NOISE.search(line) for line in NOISE)
    assert not any(quiet_tf._NOISE.search(line) for line in GENUINE)

