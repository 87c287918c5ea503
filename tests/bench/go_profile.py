#!/usr/bin/env python3
"""Where a stripped Go program (a terraform release) spends its CPU.

Release builds of terraform carry no ELF symbols, but every Go binary keeps
its own function table (.gopclntab) for stack traces; this reads it and maps
sampled addresses to function names.

    perf record -a -F 299 -o tf.data -- terraform apply ...
    perf script -i tf.data --comm terraform -F ip | tests/bench/go_profile.py $(which terraform) [TOP]

Prints the share of samples per function, largest first. Recorded with call
chains (`perf record -g`), each sample is its chain of frames, one address a
line and a blank line after it: then a function's share is of the samples it
was anywhere on the stack in (its own time and its callees'), so a caller
shows what its whole work costs.

perf prints a sample's address as it is in the process, but the frames of
a call chain as offsets into the program's file: both are mapped.
"""
import bisect
import collections
import struct
import subprocess
import sys


def function_table(path):
    """(entry addresses, names, start and end of the program's code, and
    what to add to a file offset in the code for its address)."""
    sections = subprocess.check_output(["readelf", "-SW", path], text=True)
    offset = size = text_start_addr = text_end = bias = None
    for line in sections.splitlines():
        if "]" not in line:
            continue
        fields = line.split("]", 1)[1].split()
        if fields[0] == ".gopclntab":
            offset, size = int(fields[3], 16), int(fields[4], 16)
        elif fields[0] == ".text":
            text_start_addr = int(fields[2], 16)
            text_end = text_start_addr + int(fields[4], 16)
            bias = text_start_addr - int(fields[3], 16)
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
    return entries, names, (text_start_addr, text_end, bias)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    entries, names, (start, end, bias) = function_table(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40

    def name(ip, offset):
        if offset:
            ip += bias
        i = bisect.bisect_right(entries, ip) - 1
        if i < 0 or not start <= ip < end:
            # the kernel (system calls, page faults) or the vDSO
            return "[outside the program: kernel]"
        return names[i]

    lines = [line.split() for line in sys.stdin]
    chains = any(not fields for fields in lines)
    counts = collections.Counter()
    samples = 0
    chain = []

    def sample():
        nonlocal samples
        if chain:
            samples += 1
            counts.update(set(chain))
            chain.clear()

    for fields in lines:
        if not fields:
            sample()
            continue
        try:
            ip = int(fields[0], 16)
        except ValueError:
            continue
        # a kernel address is never an offset into the program
        chain.append(name(ip, chains and ip < 1 << 47))
        if not chains:
            sample()
    sample()
    total = samples or 1
    print(f"{samples} samples")
    for fn, n in counts.most_common(top):
        print(f"{100 * n / total:6.2f}%  {fn}")


if __name__ == "__main__":
    main()
