"""Per benchmark job of a results folder: the card it ran on, other processes seen there, timing.

    python tools/gpu/multigpu_table.py RESULTS_DIR

A job's card is its record's NVML UUID (provenance.device.gpu_uuid); gpu-trace records also list
other processes NVML saw on that card while measuring (foreign_pids). Prints one row per job and
how many distinct cards were used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(root: str) -> int:
    rows = []
    for path in sorted(Path(root).glob("*/*/*.json")):
        kind = path.parent.name
        if kind not in ("latency", "gpu"):
            continue
        rec = json.loads(path.read_text())
        dev = rec.get("provenance", {}).get("device", {})
        rows.append((kind, rec["precision"], rec["status"], dev.get("gpu_uuid", "?"),
                     rec.get("details", {}).get("foreign_pids", "-"),
                     rec.get("metrics", {}).get("decode_tok_s")))
    print(f"{'job':<9}{'precision':<14}{'status':<8}{'card':<44}{'foreign':<9}{'decode tok/s':>12}")
    for kind, prec, status, card, foreign, tok_s in rows:
        tok = f"{tok_s:.1f}" if isinstance(tok_s, float) else "-"
        print(f"{kind:<9}{prec:<14}{status:<8}{card:<44}{str(foreign):<9}{tok:>12}")
    cards = {r[3] for r in rows}
    flagged = [r for r in rows if r[4] not in ("-", [], None)]
    print(f"jobs={len(rows)} cards={len(cards)} jobs_with_foreign_processes={len(flagged)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results"))
