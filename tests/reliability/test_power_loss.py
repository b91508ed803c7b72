"""Power loss, simulated below SQLite (tests/reliability/powerloss.py): every write a file has not synced is
dropped (or, in the torn mode, partly kept) at each crash point of a run of the profiles' transaction shapes.

durable (synchronous FULL) promises that an acknowledged commit survives power loss; production (NORMAL) that
the last transactions may be lost, never corruption. Checked at 200+ crash points per profile, both modes."""

from __future__ import annotations

import pytest

pytest.importorskip("apsw", reason="the power-loss simulation needs APSW (a dev dependency)")

import turboalchemy  # noqa: E402

from .powerloss import run  # noqa: E402

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize("profile", ["durable", "production"])
def test_power_loss_at_every_crash_point_keeps_the_profiles_promise(tmp_path, profile):
    result = run(profile, crash_points=200, seed=1, workdir=tmp_path)
    assert result["crash_points"] >= 200 and result["images"] == 2 * result["crash_points"]
    assert result["violations"] == []  # a prefix of the commits, whole, every synced one kept
    assert result["integrity_failures"] == 0
    if profile == "durable":
        assert result["lost"] == 0  # every acknowledged commit survived
    else:
        assert result["lost"] == result["lost_unsynced"]  # only commits after the last sync were lost
        assert result["lost"] > 0  # NORMAL does lose the newest commits: the simulation drops unsynced writes


def test_power_loss_the_simulation_catches_a_profile_that_does_not_sync(tmp_path, monkeypatch):
    """synchronous OFF never syncs: the same checks find acknowledged commits lost and damaged files."""
    unsafe = turboalchemy.PROFILES["durable"].extend("durable+off", synchronous="OFF")
    monkeypatch.setitem(turboalchemy.PROFILES, "durable", unsafe)
    result = run("durable", crash_points=60, seed=1, workdir=tmp_path, transactions=60)
    assert any("acknowledged" in v["problem"] for v in result["violations"])
