"""What a measurement ran on: the CPU model and the instruction-set flags that decide which
kernels TensorFlow's oneDNN runs (speed figures differ between AVX2-only and AVX-512 CPUs)."""

import os

# The CPU flags that change TensorFlow's kernels (oneDNN picks its code path by them).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu_info():
    """(CPU model name, set of flags) of the first processor in /proc/cpuinfo;
    ("unknown CPU", empty set) where there is none (not Linux)."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as reader:
            for line in reader:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def machine_description():
    """"N cores, <CPU model>, flags avx2 ..., load average L" (other jobs skew timings)."""
    model, flags = cpu_info()
    present = [flag for flag in SPEED_FLAGS if flag in flags]
    return "%d cores, %s, flags %s, load average %.1f" % (
        os.cpu_count() or 0, model, " ".join(present) or "none of " + " ".join(SPEED_FLAGS),
        os.getloadavg()[0])
