"""Importing TensorFlow without its start-up noise.

On a machine without a GPU, TensorFlow 2.15 prints lines such as `Unable to register cuDNN
factory`, `Could not find cuda drivers` and a TensorRT warning to stderr while it is
imported, some of them even with TF_CPP_MIN_LOG_LEVEL=3 (XLA's plugin registry logs before
that setting is read). A researcher reads them as errors. The import here runs with the
process's stderr (file descriptor 2) captured; afterwards every captured line that is not
known start-up noise is written back to stderr, so nothing genuine is lost.
"""

import os
import re
import sys
import tempfile

# The C++ start-up lines that say nothing about the user's run.
_NOISE = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory|Could not find cuda drivers|"
    r"TF-TRT Warning|oneDNN custom operations are on|cpu_feature_guard|"
    r"This TensorFlow binary is optimized|rebuild TensorFlow with the appropriate compiler|"
    # TF 2.16+ (absl logging): printed on import whatever TF_CPP_MIN_LOG_LEVEL says
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR")


def import_tensorflow():
    """Imports tensorflow (once) with the start-up noise filtered out; returns the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _NOISE.search(line):
                    print(line, file=sys.stderr)
    return tensorflow
