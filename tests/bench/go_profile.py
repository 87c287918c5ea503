#!/usr/bin/env python3
"""Where a stripped Go program (a terraform release) spends its CPU.

Release builds of terraform carry no ELF symbols, but every Go binary keeps
its own function table (.gopclntab) for stack traces; this reads it and maps
sampled addresses to function names.

    perf record -a -F 299 -o tf.data -- terraform apply ...
    perf script -i tf.data --comm terraform -F ip | tests/bench/go_profile.py $(which terraform) [TOP]

Prints the share of samples per function, largest first.
"""
import bisect
import collections
import struct
import subprocess
import sys


def function_table(path):
    """(entry addresses, names, end of the program's code)."""
    sections = subprocess.check_output(["readelf", "-SW", path], text=True)
    offset = size = text_end = None
    for line in sections.splitlines():
        if "]" not in line:
            continue
        fields = line.split("]", 1)[1].split()
        if fields[0] == ".gopclntab":
            offset, size = int(fields[3], 16), int(fields[4], 16)
        elif fields[0] == ".text":
            text_end = int(fields[2], 16) + int(fields[4], 16)
    if offset is None:
        sys.exit(f"{path}: no .gopclntab section (not a Go binary?)")
    with open(path, "rb") as f:
        f.seek(offset)
        tab = f.read(size)
    magic = struct.unpack_from("<I", tab, 0)[0]
    if magic not in (0xFFFFFFF0, 0xFFFFFFF1):  # Go 1.18 and later
        sys.exit(f"{path}: function table format {magic:#x} not known")
    ptr = tab[7]
    word_fmt = "<Q" if ptr == 8 else "<I"

    def word(i):
        return struct.unpack_from(word_fmt, tab, 8 + i * ptr)[0]

    nfunc, text_start, names_at, funcs_at = word(0), word(2), word(3), word(7)
    entries, names = [], []
    for i in range(nfunc):
        entry, func = struct.unpack_from("<II", tab, funcs_at + i * 8)
        name_off = struct.unpack_from("<i", tab, funcs_at + func + 4)[0]
        start = names_at + name_off
        names.append(tab[start : tab.index(b"\0", start)].decode(errors="replace"))
        entries.append(text_start + entry)
    return entries, names, text_end


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    entries, names, text_end = function_table(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    counts = collections.Counter()
    for line in sys.stdin:
        try:
            ip = int(line.split()[-1], 16)
        except (IndexError, ValueError):
            continue
        i = bisect.bisect_right(entries, ip) - 1
        if i < 0 or ip >= text_end:
            # the kernel (system calls, page faults) or the vDSO
            counts["[outside the program: kernel]"] += 1
        else:
            counts[names[i]] += 1
    total = sum(counts.values()) or 1
    print(f"{total} samples")
    for name, n in counts.most_common(top):
        print(f"{100 * n / total:6.2f}%  {name}")


if __name__ == "__main__":
    main()
