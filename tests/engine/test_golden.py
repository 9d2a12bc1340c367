"""Golden transcripts (etcd/raft's testdata style): a scenario, then the exact expected run.

Regenerate on purpose with `UPDATE_GOLDEN=1 make test-fast` and review the diff.
"""

import os

import pytest

from engine.transcript import transcript

from .helpers import ROOT, load, run

GOLDEN = ROOT / "tests" / "golden"
CASES = {
    "split_vote": 600,
    "leader_crash_replication": 3200,
    "minority_partition": 4800,
    "figure8": 2000,
    "figure8_bug": 2000,
    # Paxos: one proposer; a duel with back-off and without; a Multi-Paxos gap filled by a no-op.
    "paxos_clean": 100,
    "paxos_duel_backoff": 200,
    "paxos_duel_livelock": 120,
    "paxos_multi_leader_crash": 2100,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_transcript(name):
    scenario = load(name)
    _, recs = run(scenario, until_ms=CASES[name])
    got = transcript(recs, scenario.get("protocol", "raft"))
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        path.write_text(got)
        if not os.environ.get("UPDATE_GOLDEN"):
            pytest.fail(f"{path.name} did not exist; written now, review it and commit")
    assert got == path.read_text(), f"transcript of {name} changed (UPDATE_GOLDEN=1 to accept)"
