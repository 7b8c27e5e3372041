#!/usr/bin/env python3
"""ncu_summary.py — where a forward's time goes, from Nsight Compute's raw CSV of per-kernel
durations (`ncu --metrics gpu__time_duration.sum --csv --page raw`): the launches are cut
into forwards at each embedding kernel, and for each kind of forward (its number of
kernels and its embedding grid) the first one is broken down by kernel, largest first.

  python3 ncu_summary.py NCU.csv [--top N]
"""
import argparse
import collections
import csv
import re
import sys


def kernels(path):
    """(name, nanoseconds, grid, block) per launch, in launch order."""
    with open(path, encoding="utf-8", errors="replace") as f:
        rows = csv.reader(line for line in f if line.startswith('"'))
        head = next(rows, None)
        if not head or "gpu__time_duration.sum" not in head:
            sys.exit(f"{path}: no gpu__time_duration.sum column (not ncu's raw CSV?)")
        name, dur = head.index("Kernel Name"), head.index("gpu__time_duration.sum")
        grid, block = head.index("Grid Size"), head.index("Block Size")
        out = []
        for r in rows:
            value = r[dur].replace(",", "")
            if not r[0] or not value.replace(".", "").isdigit():
                continue  # the units row
            out.append((re.sub(r"\(.*", "", r[name]).strip(), float(value), r[grid], r[block]))
        return out


def forwards(ks):
    """The launches cut at each embedding kernel (the first launch of every forward)."""
    cuts = [i for i, k in enumerate(ks) if k[0].startswith("embed_kernel")]
    return [ks[a:b] for a, b in zip(cuts, cuts[1:] + [len(ks)])]


def breakdown(fw, top):
    total = sum(k[1] for k in fw)
    agg = collections.OrderedDict()
    for n, ns, grid, block in fw:
        a = agg.setdefault(n[:70], [0, 0.0, grid, block])
        a[0] += 1
        a[1] += ns
    lines = []
    for n, (count, ns, grid, block) in sorted(agg.items(), key=lambda x: -x[1][1])[:top]:
        lines.append(f"  {ns / 1e3:9.1f} us {100 * ns / total:5.1f}%  x{count:<4d}"
                     f"{ns / count / 1e3:8.2f} us each  grid {grid:<12s} {n}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    fws = forwards(kernels(a.csv))
    if not fws:
        sys.exit(f"{a.csv}: no embedding kernel, so no forward to break down")
    print(f"{len(fws)} forwards; kernel time of each (us): "
          + " ".join(f"{sum(k[1] for k in fw) / 1e3:.0f}" for fw in fws))
    seen = set()
    for i, fw in enumerate(fws):
        kind = (len(fw), fw[0][2])
        if kind in seen:
            continue
        seen.add(kind)
        print(f"forward {i}: {len(fw)} kernels, embedding grid {fw[0][2]}, "
              f"{sum(k[1] for k in fw) / 1e3:.1f} us of kernel time")
        print("\n".join(breakdown(fw, a.top)))


if __name__ == "__main__":
    main()
