"""Append the RESULT lines of a bench/gpu_check.sh log to bench/RESULTS.md's § 6 as dated table rows.

Each row: the date and device from the header its benchmark printed, the command (the log's ``### …`` line), and the
RESULT line's text. A step that printed no RESULT line gets a row saying how it ended (exit status), so a failed or
timed-out check is recorded as such, never silently missing. The gpu-marked tests are summarised by pytest's last line.

Run:  python bench/record_results.py bench/out/gpu_check.txt >> bench/RESULTS.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


PYTEST_SUMMARY = re.compile(r"^=*\s*\d+ (passed|failed|skipped|deselected|errors?)\b")


def rows(log: str) -> list[str]:
    out, date, device, command, found = [], "", "", "", False
    for line in log.splitlines():
        if line.startswith("### exit "):
            if command and not found:
                out.append(f"| {date or '—'} | {device or '—'} | `{command}` | no result line (exit {line[9:]}) |")
            command, found = "", False
        elif line.startswith("### "):
            command, date, device, found = line[4:], "", "", False
        elif line.startswith("date:"):
            date = line.split(":", 1)[1].strip()
        elif line.startswith("device:"):
            device = line.split(":", 1)[1].strip()
        elif line.startswith("RESULT ") or (command.startswith("python3 -m pytest") and PYTEST_SUMMARY.match(line)):
            found = True
            text = line.removeprefix("RESULT ").strip("= ").replace("|", "·")
            out.append(f"| {date or '—'} | {device or '—'} | `{command}` | {text} |")
    return out


def main() -> None:
    log = Path(sys.argv[1]).read_text()
    gpu = next((l for l in log.splitlines() if l and not l.startswith(("name,", "###"))), "")
    print(f"\n### GPU check — {gpu or 'unknown GPU'}\n")
    print("| date (UTC) | device | command | result |\n|---|---|---|---|")
    print("\n".join(rows(log)))


if __name__ == "__main__":
    main()
