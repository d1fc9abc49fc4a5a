"""Time and peak memory of scripts/import_hf.py on an ELECTRA-base-shaped pair.

The HF dirs are random weights written by transformers (make them once, in the separate
torch + transformers environment of scripts/make_hf_fixtures.py):

    /tmp/hfref/bin/python scripts/make_hf_fixtures.py --base-shaped /tmp/hf_base
    .venv/bin/python bench/import_hf.py --hf-base /tmp/hf_base

For each weight layout (model.safetensors; pytorch_model.bin in torch's zip format) it runs,
each in a fresh process: the baseline -- reading the same weight files into NumPy arrays
(util.hf_weights.read_weights, the least any import must do) -- and the whole import
(discriminator + generator -> checkpoint, shape files, record). It prints wall seconds and
peak resident memory (the process's ru_maxrss, TensorFlow's start-up included) of both,
the import's ratios to the baseline, and the weights' size; the machine line names the CPU
flags.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
from util.machine import machine_description  # noqa: E402

READ_ONLY = """
import sys
sys.path.insert(0, %(repo)r)
from util.quiet_tf import import_tensorflow
import_tensorflow()
from util import hf_weights
for d in sys.argv[1:]:
    hf_weights.read_weights(d)
"""


def measured(argv):
    """(wall seconds, peak RSS in MiB) of a child process."""
    started = time.time()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.time() - started
    stderr = child.stderr.read().decode("utf-8", "replace")
    if status != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(argv), stderr[-2000:]))
    return wall, usage.ru_maxrss / 1024.0  # Linux: KiB


def weight_bytes(directory):
    return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)
               if n.endswith((".safetensors", ".bin", ".h5")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hf-base", required=True,
                        help="dir with discriminator/<layout>/ and generator/<layout>/")
    parser.add_argument("--layouts", default="safetensors,bin-zip")
    parser.add_argument("--work-dir", help="where the imports go (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.work_dir or tempfile.mkdtemp(prefix="bench_import_hf_")
    print(machine_description())
    print("%-12s %9s %9s %9s %10s %10s %8s %8s" % (
        "layout", "weights", "read s", "import s", "read MiB", "import MiB", "time x",
        "memory x"))
    for layout in args.layouts.split(","):
        disc = os.path.join(args.hf_base, "discriminator", layout)
        gen = os.path.join(args.hf_base, "generator", layout)
        size = (weight_bytes(disc) + weight_bytes(gen)) / 2 ** 20
        read_s, read_mib = measured([sys.executable, "-c", READ_ONLY % {"repo": REPO},
                                     disc, gen])
        out = os.path.join(work, layout)
        shutil.rmtree(out, ignore_errors=True)
        import_s, import_mib = measured([sys.executable, os.path.join(REPO, "scripts",
                                                                      "import_hf.py"),
                                         disc, "--generator", gen, "--out", out])
        print("%-12s %6.0f MiB %9.1f %9.1f %10.0f %10.0f %8.2f %8.2f" % (
            layout, size, read_s, import_s, read_mib, import_mib, import_s / read_s,
            import_mib / read_mib))
        shutil.rmtree(out, ignore_errors=True)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
