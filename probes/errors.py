"""The one exception family of zeroprobe. Library errors are mapped to these at the boundary."""

from __future__ import annotations


class ZeroprobeError(Exception):
    """Base of every error zeroprobe raises on purpose."""


class ProbeError(ZeroprobeError):
    """A probe could not measure. The message is a plain-English line for the on-call engineer.

    `reached_target` says whether the target answered at all (an error reply counts): the
    /liveness contract fails while a Mongo-backed probe cannot reach its server.
    """

    reached_target = False


class ProbeTimeoutError(ProbeError):
    """The target did not answer within the probe's timeout."""


class ProbeConnectionError(ProbeError):
    """The target could not be reached: refused, unresolvable, lost mid-reply, not selected."""


class ProbeReplyError(ProbeError):
    """The target answered, but with an error or a reply we cannot read."""

    reached_target = True


class ProbeConfigError(ProbeError):
    """The probe's own configuration is unusable at run time (unset or invalid connection)."""
