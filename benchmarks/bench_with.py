"""``flashmask bench`` (or any ``flashmask`` command) with settings of ``flashmask.kernels.configs`` changed first.

    python benchmarks/bench_with.py --set BWD_PIECES_LEAD=1 --set BWD_FIRST_PIECE_SHARE=0.25 -- bench --part kernel ...

The results record the changed settings (``changed_settings`` in each run's metadata, and in the rendered tables).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from _kernel_calls import set_configs

from flashmask.cli import main

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="repeatable")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the flashmask command line")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    set_configs(args.set)
    sys.exit(main(command))
