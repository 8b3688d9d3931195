"""Per-user turn-taking profiles: learn once, warm-start every later call.

- :class:`TurnTakingProfile`: frozen, bounded, versioned, no text.
- :class:`ProfileStore`: ``get`` / ``put`` / ``delete`` / ``expire``, keyed by a salted hash of the
  user id; :class:`SQLiteProfileStore` (embedded default) and :class:`RedisProfileStore` (fleets,
  the ``redis`` extra).
- :func:`snapshot_profile` at session end, :func:`warm_start` at session start.

See ``docs/profiles.md``.
"""

from pipecat_speculative.profiles.profile import (
    MAX_JSON_BYTES,
    MAX_OUTCOMES,
    MAX_PATIENCE_PAUSES,
    MAX_PAUSES,
    SCHEMA_VERSION,
    PatiencePause,
    PauseSample,
    ProfileError,
    ProfileVersionError,
    TurnTakingProfile,
)
from pipecat_speculative.profiles.store import (
    DEFAULT_TTL_SECS,
    ProfileStore,
    RedisProfileStore,
    SQLiteProfileStore,
    hash_user_id,
)
from pipecat_speculative.profiles.warm_start import snapshot_profile, warm_start

__all__ = [
    "DEFAULT_TTL_SECS",
    "MAX_JSON_BYTES",
    "MAX_OUTCOMES",
    "MAX_PATIENCE_PAUSES",
    "MAX_PAUSES",
    "PatiencePause",
    "PauseSample",
    "ProfileError",
    "ProfileStore",
    "ProfileVersionError",
    "RedisProfileStore",
    "SCHEMA_VERSION",
    "SQLiteProfileStore",
    "TurnTakingProfile",
    "hash_user_id",
    "snapshot_profile",
    "warm_start",
]
