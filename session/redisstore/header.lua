-- Shared by the replicated scripts (prepended to each): the header every
-- replicated session value starts with, and comparisons of versions.
--
-- A value is {"version":"V","origin":"dc","digest":"D","vv":"dc=V;dc=V",<body>
-- where body is the rest of the session's JSON. The header leads the JSON
-- so that a script reads it with one pattern match instead of decoding the
-- whole value, and can re-render it around an unchanged body. A digest of
-- "-" marks a tombstone (a deleted session, kept so a late put with an
-- older version cannot bring it back).

local function parsevv(s)
	local t = {}
	for dc, v in string.gmatch(s, '([^=;]+)=(%d+)') do
		t[dc] = v
	end
	return t
end

-- parse returns nil for no value, and version "0" (older than any write)
-- for a value without a header: one written before replication was on.
local function parse(val)
	if not val then
		return nil
	end
	local v, o, d, vv, body = string.match(val, '^{"version":"(%d+)","origin":"([^"]*)","digest":"([^"]*)","vv":"([^"]*)",(.*)$')
	if not v then
		return {version = '0', origin = '', digest = '', vv = {}, legacy = true}
	end
	return {version = v, origin = o, digest = d, vv = parsevv(vv), body = body}
end

-- newer compares decimal IDs, which do not fit Lua's doubles exactly:
-- a longer string is a larger number, as neither has leading zeros.
local function newer(a, b)
	if #a ~= #b then
		return #a > #b
	end
	return a > b
end

local function vvstring(t)
	local ks = {}
	for k in pairs(t) do
		ks[#ks + 1] = k
	end
	table.sort(ks)
	local parts = {}
	for _, k in ipairs(ks) do
		parts[#parts + 1] = k .. '=' .. t[k]
	end
	return table.concat(parts, ';')
end

local function render(h, body)
	return '{"version":"' .. h.version .. '","origin":"' .. h.origin .. '","digest":"' .. h.digest .. '","vv":"' .. vvstring(h.vv) .. '",' .. body
end

local function tombstone(h)
	return h.digest == '-'
end

-- get reads a key that may hold another type (not a session): as no value.
local function get(key)
	local ok, v = pcall(redis.call, 'GET', key)
	if ok and v then
		return v
	end
	return nil
end

local function setvalue(key, val, ttl)
	if ttl == '0' then
		redis.call('SET', key, val)
	else
		redis.call('SET', key, val, 'PX', ttl)
	end
end

local function standby(rolekey)
	return redis.call('HGET', rolekey, 'role') == 'standby'
end

-- logchange appends a change with the next sequence number n: a reader
-- that sees n jump past its checkpoint's knows entries were trimmed
-- before it read them (trimming leaves no other trace it can rely on).
local function logchange(stream, seq, maxlen, op, name, h, body, ttl)
	local n = redis.call('INCR', seq)
	redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'n', n,
		'op', op, 'key', name, 'v', h.version, 'o', h.origin, 'd', h.digest,
		'vv', vvstring(h.vv), 'body', body, 'ttl', ttl)
end
