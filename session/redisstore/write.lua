-- Local session writes (Put and Delete) with their change log entries,
-- atomically: a write and its entry are never one without the other.
--
-- KEYS[1] the change log stream, KEYS[2] the role hash, KEYS[3] the log's
-- sequence counter, KEYS[4..] sessions
-- ARGV[1] stream max length, ARGV[2] "1": refuse writes on a standby,
-- ARGV[3] this datacenter, then 7 per session: op (put|del), its name in
-- the log (the key without prefix), a new version, the version the writer
-- based the write on ("0": none), digest, body, TTL in ms.
--
-- Returns {written, touched, refused, stale}.
local stream, role, seq = KEYS[1], KEYS[2], KEYS[3]
local maxlen, dc = ARGV[1], ARGV[3]
if ARGV[2] == '1' and standby(role) then
	return {0, 0, #KEYS - 3, 0}
end
local written, touched, stale = 0, 0, 0
for i = 4, #KEYS do
	local a = 4 + (i - 4) * 7
	local op, name, ver, base, digest, body, ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
	local cur = parse(get(KEYS[i]))
	local h
	if cur and not cur.legacy and op == 'put' and cur.digest == digest then
		-- Only the last access changed: a TTL refresh keeps the version.
		h = cur
		touched = touched + 1
	elseif cur and not cur.legacy and base ~= '0' and cur.origin ~= dc and newer(cur.version, base) then
		-- The writer saw an older version, and another datacenter has
		-- changed the session since: a late refresh must not undo that.
		stale = stale + 1
		if op == 'put' and not tombstone(cur) and ttl ~= '0' then
			redis.call('PEXPIRE', KEYS[i], ttl)
		end
	elseif cur and not newer(ver, cur.version) then
		-- A newer version is stored (a peer's clock is ahead): it wins.
		stale = stale + 1
	else
		h = {version = ver, origin = dc, digest = digest, vv = cur and cur.vv or {}}
		h.vv[dc] = ver
		written = written + 1
	end
	if h then
		setvalue(KEYS[i], render(h, body), ttl)
		logchange(stream, seq, maxlen, op, name, h, body, ttl)
	end
end
return {written, touched, 0, stale}
