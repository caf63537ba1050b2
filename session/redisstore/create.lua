-- GetOrCreate for a replicated store: as getorcreate.lua, but a tombstone
-- counts as no session, the new session is versioned and logged, and a
-- standby computes but does not store.
--
-- KEYS[1] the session, KEYS[2] the change log stream, KEYS[3] the role hash,
-- KEYS[4] the log's sequence counter
-- ARGV[1] stream max length, ARGV[2] "1": refuse writes on a standby,
-- ARGV[3] this datacenter, ARGV[4] the session's name in the log,
-- ARGV[5] its version, ARGV[6] digest, ARGV[7] body, ARGV[8] TTL in ms.
--
-- Returns {value, 1} when it stored the session, {value, 0} when one was
-- there, and {"", 2} when it may not write (a standby, or a newer
-- tombstone).
local raw = redis.call('GET', KEYS[1])
local cur = parse(raw)
if raw and not tombstone(cur) then
	return {raw, 0}
end
if ARGV[2] == '1' and standby(KEYS[3]) then
	return {'', 2}
end
if cur and not newer(ARGV[5], cur.version) then
	return {'', 2}
end
local h = {version = ARGV[5], origin = ARGV[3], digest = ARGV[6], vv = cur and cur.vv or {}}
h.vv[ARGV[3]] = ARGV[5]
local val = render(h, ARGV[7])
setvalue(KEYS[1], val, ARGV[8])
logchange(KEYS[2], KEYS[4], ARGV[1], 'put', ARGV[4], h, ARGV[7], ARGV[8])
return {val, 1}
