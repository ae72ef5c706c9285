#!/usr/bin/env python3
"""Reference R-peak positions on the MIT-BIH excerpt shipped with SciPy, for testing Ferry's
QRS detector.

Usage:
    python3 tests/peers/ecg_rpeaks.py [--uv-out FILE] [--method neurokit] [--no-clean]

Signal: MIT-BIH Arrhythmia Database record 208, lead MLII, 5 minutes (108 000 samples) at 360 Hz,
as shipped in SciPy's `scipy/misc/ecg.dat` (an .npz holding uint16 "ecg"; SciPy's own loader
computes mV = (u16 - 1024) / 200). Debian's python3-scipy (1.10.x) installs it at
/usr/lib/python3/dist-packages/scipy/misc/ecg.dat; `scipy.datasets.electrocardiogram()` in newer
SciPy downloads it instead, which does not work offline, so the file is read directly here.

Output (stdout, JSON):
    {"source": path, "sampling_hz": 360, "n": 108000, "method": ..., "cleaned": bool,
     "uv": [int, ...]            # omitted when --uv-out is given (then "uv_file": FILE)
     "rpeaks": [sample index, ...]}   # 0-based indices into uv

uv = (u16 - 1024) * 5, exact integers (1 LSB = 5 uV). With --uv-out FILE the samples are written
to FILE, one integer per line, to keep stdout small. The detector is neurokit2's
`ecg_peaks` (default method "neurokit"), run on `nk.ecg_clean(...)` of the mV signal unless
--no-clean. This is a peer detector, not ground truth: the record's reference beat annotations
(208.atr) are not shipped in any registry package.
"""
import argparse
import json
import os
import sys

import numpy as np

CANDIDATES = [
    "/usr/lib/python3/dist-packages/scipy/misc/ecg.dat",
    os.path.expanduser("~/.cache/scipy-data/ecg.dat"),
]


def find_ecg_dat():
    paths = list(CANDIDATES)
    try:  # a pip-installed SciPy older than 1.12 also ships it
        import importlib.util
        spec = importlib.util.find_spec("scipy")
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                paths.append(os.path.join(loc, "misc", "ecg.dat"))
    except Exception:
        pass
    for p in paths:
        if os.path.exists(p):
            return p
    raise SystemExit("ecg.dat not found; apt-get install python3-scipy (Debian 12 ships SciPy 1.10)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uv-out", help="write the uV samples here, one integer per line")
    ap.add_argument("--method", default="neurokit", help="neurokit2 ecg_peaks method (default neurokit)")
    ap.add_argument("--no-clean", action="store_true", help="run the detector on the raw signal")
    args = ap.parse_args()

    path = find_ecg_dat()
    with np.load(path) as z:
        raw = z["ecg"].astype(np.int64)
    uv = (raw - 1024) * 5
    mv = uv / 1000.0
    fs = 360

    import neurokit2 as nk
    sig = mv if args.no_clean else nk.ecg_clean(mv, sampling_rate=fs)
    _, info = nk.ecg_peaks(sig, sampling_rate=fs, method=args.method)
    rpeaks = [int(x) for x in info["ECG_R_Peaks"]]

    out = {"source": path, "sampling_hz": fs, "n": int(len(uv)), "method": args.method,
           "cleaned": not args.no_clean, "neurokit2_version": nk.__version__}
    if args.uv_out:
        with open(args.uv_out, "w") as f:
            f.write("\n".join(str(int(v)) for v in uv))
            f.write("\n")
        out["uv_file"] = args.uv_out
    else:
        out["uv"] = [int(v) for v in uv]
    out["rpeaks"] = rpeaks
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
