"""turbolite's exceptions: one base class, small subclasses, the driver's error kept as __cause__."""

from __future__ import annotations


class TurboliteError(Exception):
    """Base class of every error turbolite raises."""


class ProfileError(TurboliteError):
    """A PRAGMA profile is malformed, or a connection did not take its settings."""
