"""turboalchemy.Profile: PRAGMAs applied to real connections and read back."""

import pytest

from turboalchemy import Profile, ProfileError

from .dbapi import SQLITE


def test_a_profile_is_applied_and_verified(tmp_path):
    profile = Profile(
        "p", {"journal_mode": "WAL", "synchronous": "NORMAL", "cache_size": -2000, "temp_store": "MEMORY"}
    )
    conn = SQLITE.connect(tmp_path / "a.db")
    profile.apply(conn)
    assert profile.verify(conn) == {"journal_mode": "wal", "synchronous": 1, "cache_size": -2000, "temp_store": 2}


def test_verify_names_every_setting_that_did_not_take(tmp_path):
    conn = SQLITE.connect(tmp_path / "b.db")
    with pytest.raises(ProfileError, match="synchronous: wanted 0.*cache_size: wanted -1234"):
        Profile("p", {"synchronous": "OFF", "cache_size": -1234}).verify(conn)


@pytest.mark.parametrize(
    "pragmas",
    [
        {"synchronous": "SOMETIMES"},
        {"cache_size": "-64000; DROP TABLE t"},
        {"not_a_pragma": 1},
        {"busy_timeout": True},
        {"journal_mode": 3},
    ],
)
def test_malformed_profiles_are_refused_when_defined(pragmas):
    with pytest.raises(ProfileError):
        Profile("bad", pragmas)
