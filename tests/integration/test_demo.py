"""`dealsync demo`, the README's first command, as a new user runs it: into a pipe (`make demo > log`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_into_a_pipe_with_nothing_padded_and_ends_as_the_readme_says(tmp_path):
    demo = subprocess.run(
        [str(Path(sys.executable).parent / "dealsync"), "demo"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    padded = [n for n, line in enumerate(lines, 1) if line != line.rstrip()]
    assert padded == [], f"lines padded with spaces: {padded[:10]}"
    widest = max(lines, key=len)
    assert len(widest) < 1000, f"a line of {len(widest)} characters: {widest[:120]}..."
    panel = next(line for line in lines if "Step 1: partners register deals" in line)
    assert panel.endswith("│") and len(panel) < 100  # a panel as wide as its text, not the pipe
    # What each CRM holds at the end: the private note stayed at acme, the partners apart.
    held = demo.stdout[demo.stdout.index("What each CRM holds now") :]
    vendor_rows = held[: held.index("│ acme")]
    assert "Our margin on this is thin" not in vendor_rows
    assert "Acme Cloud rollout" in vendor_rows and "Globex migration" in vendor_rows
    globex_rows = held[held.index("│ globex") : held.index("Partner delta's Salesforce org")]
    assert "Acme" not in globex_rows
    # Delta, on Salesforce: its registration reached the vendor, its unmarked note did not; the
    # vendor's conversion reached delta, owned by the user its email names.
    assert "Delta payments rollout" in vendor_rows and "Pricing thoughts" not in vendor_rows
    assert "We could go 10% lower" not in demo.stdout
    delta_rows = held[held.index("Partner delta's Salesforce org") :]
    hooli = next(line for line in delta_rows.splitlines() if "Hooli analytics" in line)
    assert "dee@delta.test" in hooli and "Welcome Dee" in hooli
    assert "Acme" not in delta_rows and "Globex" not in delta_rows
