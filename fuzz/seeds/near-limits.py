#!/usr/bin/env python3
"""Writes seeds for the `proc` target with values near the integer limits in every unit
(issue 24): each /proc parser's real text (Linux 6.18.44, tests/fixtures/roots/linux-6.18-host
and this machine's /proc) with one number at a time replaced by a value at or just past what
u32, i64 or u64 holds, itself or scaled by B, kB, MB, GB or a 4 KiB page.

    python3 fuzz/seeds/near-limits.py /tmp/proc-seeds   # then pass the directory to cargo fuzz run

The first byte picks the parser, as in tune::kernel::parse_any."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2] / "tests/fixtures/roots/linux-6.18-host"
U64 = 2**64 - 1
SCALES = {"B": 1, "kB": 2**10, "MB": 2**20, "GB": 2**30, "page": 4096}
VALUES = sorted(
    {2**32 - 1, 2**32, 2**63 - 1, 2**63, U64, U64 + 1}
    | {U64 // s for s in SCALES.values()}
    | {U64 // s + 1 for s in SCALES.values()}
)
# (selector, name, text): the parsers of tune::kernel::parse_any in its order. In status only
# the lines of sizes and counts are varied (its other numbers are ids and masks).
SAMPLES = [
    (0, "slabinfo", "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\nTCP 208 208 2368 13 8 : tunables 0 0 0 : slabdata 16 16 0\nsock_inode_cache 1472 1472 704 23 4 : tunables 0 0 0 : slabdata 64 64 0\n"),
    (1, "netstat", "TcpExt: ListenOverflows ListenDrops TCPMemoryPressures\nTcpExt: 0 0 0\n"),
    (2, "file-nr", (ROOT / "proc/sys/fs/file-nr").read_text()),
    (3, "sockstat", (ROOT / "proc/net/sockstat").read_text()),
    (4, "meminfo", "MemTotal:       24684092 kB\nMemFree:         2086236 kB\nMemAvailable:   20490032 kB\nSlab:            1515888 kB\nSReclaimable:     966780 kB\nHugePages_Total:       0\n"),
    (5, "nf_conntrack", "entries  found new invalid drop\n00000000  00000001 00000002 00000003 00000004\n"),
    (6, "status", (ROOT / "proc/self/status").read_text()),
    (7, "limits", "Max open files            20000                20000                files     \n"),
    (8, "stat", "3619 (cat) R 3500 3497 12554 0 -1 4194304 76 0 0 0 0 0 0 0 20 0 1 0 96736 3133440 380 18446744073709551615 94581864079360 94581864099241\n"),
]


def line_of(text: str, m: re.Match) -> str:
    return text[text.rfind("\n", 0, m.start()) + 1 :]


def main(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for selector, name, text in SAMPLES:
        numbers = [
            m
            for m in re.finditer(r"(?<![0-9A-Za-z_])[0-9]+(?![0-9A-Za-z_])", text)
            if name != "status" or re.match(r"(Vm|Rss|Pid|Tgid|FDSize|Threads)", line_of(text, m))
        ]
        for i, m in enumerate(numbers):
            for v in VALUES:
                digits = f"{v:08x}" if name == "nf_conntrack" else str(v)
                units = [""] + ([" B", " MB", " GB", " gB"] if name in ("meminfo", "status") else [])
                for unit in units:
                    after = text[m.end():]
                    if unit and after.startswith(" kB"):
                        after = after[3:]
                    seed = text[: m.start()] + digits + unit + after
                    path = out / f"near-limits-{name}-{i}-{v:x}{unit.strip()}"
                    path.write_bytes(bytes([selector]) + seed.encode())
                    written += 1
    print(f"{written} seeds in {out}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
