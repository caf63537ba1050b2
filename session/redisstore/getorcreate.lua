-- GetOrCreate in one round trip, atomically: Redis runs a script without
-- interleaving other commands, so of several instances racing on one key
-- exactly one sees it absent and creates it, and the rest get its value.
--
-- KEYS[1]  the session's key (one key, so the script runs on one Cluster slot)
-- ARGV[1]  the new session's JSON
-- ARGV[2]  its time to live in milliseconds
--
-- Returns {value, created}: the stored JSON and 0 when the key existed,
-- or ARGV[1] and 1 when the script stored it.
local v = redis.call('GET', KEYS[1])
if v then
	return {v, 0}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {ARGV[1], 1}
