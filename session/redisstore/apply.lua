-- Applies a batch of a peer's changes and advances the peer's checkpoint
-- in the same script, so the two cannot diverge: a replicator killed at
-- any point either applied the batch and moved the checkpoint past it, or
-- did neither, and entries at or before the checkpoint are skipped.
--
-- KEYS[1] checkpoints hash (peer: ID, peer#n: sequence number),
-- KEYS[2] processed-count hash, KEYS[3] role hash,
-- KEYS[4..] one per change: the session key (the role hash for promote)
-- ARGV[1] the peer, ARGV[2] the checkpoint after this batch ("": keep
-- it), ARGV[4] its sequence number, ARGV[3]
-- "resync": changes read from the keyspace, without stream IDs; then 8
-- per change (from ARGV[5]): stream ID, op (put|del|promote), version, origin, digest,
-- vv, body, TTL in ms.
--
-- Last writer wins on the version everywhere, so every datacenter ends
-- with the same value whatever order changes arrive in; the version
-- vectors only tell a concurrent write (neither saw the other) from a
-- later one, for counting.
--
-- Returns {applied, refreshed, stale, skipped, demoted, conflicts, keys...}
-- with the names of conflicting keys.
local peer, last, resync, lastn = ARGV[1], ARGV[2], ARGV[3] == 'resync', ARGV[4]

local function idparts(id)
	local ms, seq = string.match(id, '^(%d+)-(%d+)$')
	return tonumber(ms or 0), tonumber(seq or 0)
end
local function idnewer(a, b)
	local am, as = idparts(a)
	local bm, bs = idparts(b)
	if am ~= bm then
		return am > bm
	end
	return as > bs
end
-- dominates: a has seen every write b has.
local function dominates(a, b)
	for k, v in pairs(b) do
		if not a[k] or newer(v, a[k]) then
			return false
		end
	end
	return true
end

local stored = redis.call('HGET', KEYS[1], peer)
local cp = stored or '0-0'
local applied, refreshed, stale, skipped, demoted = 0, 0, 0, 0, 0
local conflicts = {}
for i = 4, #KEYS do
	local a = 5 + (i - 4) * 8
	local id, op, v, o, d, vv, body, ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
	if not resync and not idnewer(id, cp) then
		skipped = skipped + 1
	elseif op == 'promote' then
		-- A peer became primary with term v: fence this datacenter.
		local term = redis.call('HGET', KEYS[3], 'term') or '0'
		if newer(v, term) then
			redis.call('HSET', KEYS[3], 'role', 'standby', 'term', v, 'primary', o)
			demoted = demoted + 1
		end
	else
		local key = KEYS[i]
		local cur = parse(get(key))
		local inc = {version = v, origin = o, digest = d, vv = parsevv(vv)}
		if not cur or cur.legacy then
			setvalue(key, render(inc, body), ttl)
			applied = applied + 1
		elseif cur.version == v then
			-- The same write again: a TTL refresh, which keeps its version.
			if not tombstone(cur) then
				setvalue(key, render(cur, body), ttl)
			end
			refreshed = refreshed + 1
		else
			if not dominates(inc.vv, cur.vv) and not dominates(cur.vv, inc.vv) then
				conflicts[#conflicts + 1] = key
			end
			local merged = {}
			for k, x in pairs(cur.vv) do
				merged[k] = x
			end
			for k, x in pairs(inc.vv) do
				if not merged[k] or newer(x, merged[k]) then
					merged[k] = x
				end
			end
			if newer(v, cur.version) then
				inc.vv = merged
				setvalue(key, render(inc, body), ttl)
				applied = applied + 1
			else
				-- Ours is newer; remember having seen theirs.
				cur.vv = merged
				redis.call('SET', key, render(cur, cur.body), 'KEEPTTL')
				stale = stale + 1
			end
		end
	end
end
-- An empty last leaves the checkpoint alone (a resync's copy, which is
-- not yet complete); "0-0" is stored, so that an empty log, once copied,
-- is not copied again. A resync sets it even if older: a log that started
-- over has IDs of its own.
if last ~= '' and (resync or not stored or idnewer(last, cp)) then
	redis.call('HSET', KEYS[1], peer, last, peer .. '#n', lastn)
end
-- Every change taken from the log is counted once, here, in the script
-- that advances the checkpoint: a count above the log's length would mean
-- a change was taken twice.
if not resync then
	redis.call('HINCRBY', KEYS[2], peer, applied + refreshed + stale + demoted)
end
local out = {applied, refreshed, stale, skipped, demoted, #conflicts}
for _, k in ipairs(conflicts) do
	out[#out + 1] = k
end
return out
