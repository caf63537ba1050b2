-- Role changes of active-passive replication, atomically with the log
-- entry that tells peers.
--
-- KEYS[1] the role hash, KEYS[2] the change log stream, KEYS[3] its
-- sequence counter
-- ARGV[1] "promote" or "fence", ARGV[2] the term (an ID), ARGV[3] the
-- datacenter becoming primary, ARGV[4] stream max length
--
-- promote makes this datacenter primary and logs it, so that a former
-- primary that was unreachable learns it when it reads this log. fence
-- makes this datacenter a standby unless it already knows a newer term.
-- Returns 1 if the role changed, 0 if a newer term was already known.
local term = redis.call('HGET', KEYS[1], 'term') or '0'
if not newer(ARGV[2], term) then
	return 0
end
if ARGV[1] == 'promote' then
	redis.call('HSET', KEYS[1], 'role', 'primary', 'term', ARGV[2], 'primary', ARGV[3])
	local n = redis.call('INCR', KEYS[3])
	redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'n', n, 'op', 'promote', 'v', ARGV[2], 'o', ARGV[3])
else
	redis.call('HSET', KEYS[1], 'role', 'standby', 'term', ARGV[2], 'primary', ARGV[3])
end
return 1
