"""Lua scripts of the ``redis`` store: each write is one atomic script that checks the lock.

Every write script gets ``KEYS[1]`` = the lock key, ``ARGV[1]`` = this writer's
token and ``ARGV[2]`` = the lease in milliseconds. It writes nothing and answers
``LOCKLOST`` unless the lock still holds the token; otherwise it renews the lease,
does its work and answers ``OK``, ``EXISTS`` or ``NOTFOUND``. ``ARGV[3]`` is
``1`` when the call is a retry after a connection error, so a write that did
land the first time is recognised and answered ``OK`` instead of failing.
"""

from __future__ import annotations

__all__ = [
    "CREATE",
    "CREATE_HISTORY",
    "DELETE",
    "PUT",
    "PUT_HISTORY",
    "PUT_MANY",
    "PUT_RING",
    "RELEASE",
    "RENEW",
    "REVISION",
    "ROTATE",
    "SCAN_NAMES",
]

_GUARD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'LOCKLOST' end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS[2] = the blob; ARGV[4] = its value. Exclusive: an existing blob is EXISTS.
CREATE = (
    _GUARD
    + """
local old = redis.call('GET', KEYS[2])
if old then
  if ARGV[3] == '1' and old == ARGV[4] then return 'OK' end
  return 'EXISTS'
end
redis.call('SET', KEYS[2], ARGV[4])
return 'OK'
"""
)

# KEYS[2] = the blob; ARGV[4] = its value. Creates or replaces.
PUT = _GUARD + "redis.call('SET', KEYS[2], ARGV[4])\nreturn 'OK'\n"

# KEYS[2] = the current blob, KEYS[3] = the new history entry; ARGV[4] = the new value.
# The current blob is copied into history and replaced, in one step.
ROTATE = (
    _GUARD
    + """
local current = redis.call('GET', KEYS[2])
local taken = redis.call('EXISTS', KEYS[3]) == 1
if ARGV[3] == '1' and taken and current == ARGV[4] then return 'OK' end
if not current then return 'NOTFOUND' end
if taken then return 'EXISTS' end
redis.call('SET', KEYS[3], current)
redis.call('SET', KEYS[2], ARGV[4])
return 'OK'
"""
)

# KEYS[2] = the blob (current or history entry).
DELETE = (
    _GUARD
    + """
if redis.call('DEL', KEYS[2]) == 0 and ARGV[3] ~= '1' then return 'NOTFOUND' end
return 'OK'
"""
)

# KEYS[2] = an existing history entry; ARGV[4] = its new value.
PUT_HISTORY = (
    _GUARD
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then return 'NOTFOUND' end
redis.call('SET', KEYS[2], ARGV[4])
return 'OK'
"""
)

# KEYS[2] = a new history entry; ARGV[4] = its value.
CREATE_HISTORY = CREATE

# KEYS[2..n] = blobs, ARGV[4..n+2] = their values, in the same order. All or nothing.
PUT_MANY = (
    _GUARD
    + """
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 2]) end
return 'OK'
"""
)

# KEYS[1] = the lock; ARGV[1] = the token, ARGV[2] = the lease. 1 if still ours.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS[2] = a keystore v2 ring, KEYS[3] = its "<ring>.new" (left by an Acra writer that
# died between its two steps, and which makes Acra refuse every later write of the ring);
# ARGV[4] = the ring's value. Replaces the ring and drops the leftover.
PUT_RING = _GUARD + "redis.call('SET', KEYS[2], ARGV[4])\nredis.call('DEL', KEYS[3])\nreturn 'OK'\n"

# KEYS[1] = the lock; ARGV[1] = the token. Deletes the lock only if it is ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] = a blob. Its SHA-1 (a revision token that changes with the content), or nil.
REVISION = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
return redis.sha1hex(value)
"""

# No keys. ARGV[1] = the SCAN cursor, ARGV[2] = the MATCH pattern, ARGV[3] = COUNT. One
# SCAN step, read-only: {next cursor, number of keys, the keys joined by NUL}. One bulk
# string instead of a thousand makes listing cheap for the client; a key holding a NUL
# byte shows up as a count that does not match the split, and the client scans that step
# plainly. (Stripping the prefix here, with string.sub, was slower than in the client.)
SCAN_NAMES = """
local reply = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
return {reply[1], #reply[2], table.concat(reply[2], '\\0')}
"""
