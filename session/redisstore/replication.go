package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/idgen"
	"github.com/gslbd/gslbd/session"
)

// Defaults of Replication's zero fields.
const (
	DefaultNamespace    = "gslb:repl:"
	DefaultMaxLen       = 100000
	DefaultTombstoneTTL = time.Hour
)

// Replication makes a Store record every session change in a change log
// (a Redis Stream) in the same script as the write, and version what it
// stores, so that peers can replicate it (package replication). Nil in
// Options keeps the plain store: no log, no versions, no scripts on Put.
type Replication struct {
	// Datacenter is this datacenter's name, recorded as the origin of
	// each change and its version vector entry.
	Datacenter string
	// IDs issues versions: a changed session's version is the ID of the
	// write that changed it.
	IDs *idgen.Generator
	// Namespace prefixes the log, role, checkpoint and counter keys.
	// Default DefaultNamespace; it must not start with the key prefix,
	// or a resync would take them for sessions.
	Namespace string
	// MaxLen bounds the log (approximately, MAXLEN ~). Default DefaultMaxLen.
	MaxLen int64
	// ActivePassive makes the scripts refuse writes while the role hash
	// says standby, atomically with the write.
	ActivePassive bool
	// TombstoneTTL is how long a deleted session's tombstone stays, so a
	// late change with an older version cannot bring it back.
	TombstoneTTL time.Duration
	// Refused is told how many writes a standby refused; Stale how many
	// lost to a newer version. Either may be nil.
	Refused, Stale func(n int)
}

// Roles of active-passive replication, as the role hash stores them.
const (
	RolePrimary = "primary"
	RoleStandby = "standby"
)

// ErrStandby is returned by Delete on a standby: only the primary takes
// session writes.
var ErrStandby = errors.New("redisstore: this datacenter is a standby; session writes go to the primary")

var (
	//go:embed header.lua
	headerSrc string
	//go:embed write.lua
	writeSrc string
	//go:embed create.lua
	createSrc string
	//go:embed apply.lua
	applySrc string
	//go:embed promote.lua
	promoteSrc string

	writeScript   = redis.NewScript(headerSrc + writeSrc)
	createScript  = redis.NewScript(headerSrc + createSrc)
	applyScript   = redis.NewScript(headerSrc + applySrc)
	promoteScript = redis.NewScript(headerSrc + promoteSrc)
)

// header matches what header.lua renders at the front of a value.
var header = regexp.MustCompile(`^\{"version":"(\d+)","origin":"([^"]*)","digest":"([^"]*)","vv":"([^"]*)",`)

const tombstoneDigest = "-"

func (r *Replication) validate(o Options) []error {
	var errs []error
	if r.Datacenter == "" {
		errs = append(errs, errors.New("replication: datacenter is required"))
	}
	if r.IDs == nil {
		errs = append(errs, errors.New("replication: an ID generator is required"))
	}
	if len(o.Addrs) > 1 && o.MasterName == "" {
		errs = append(errs, errors.New("replication: needs one server or Sentinel, not a Cluster: a write and its log entry must be one script on one node"))
	}
	prefix := cmp(o.KeyPrefix, DefaultKeyPrefix)
	if strings.HasPrefix(cmp(r.Namespace, DefaultNamespace), prefix) {
		errs = append(errs, fmt.Errorf("replication: namespace %q starts with the key prefix %q", r.Namespace, prefix))
	}
	if r.MaxLen < 0 {
		errs = append(errs, fmt.Errorf("replication: max length %d is negative", r.MaxLen))
	}
	return errs
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// replKeys are the keys of the replication namespace.
type replKeys struct{ stream, role, seq, checkpoints, processed string }

func newReplKeys(ns string) replKeys {
	return replKeys{stream: ns + "log", role: ns + "role", seq: ns + "seq", checkpoints: ns + "checkpoints", processed: ns + "processed"}
}

// digest fingerprints what a version stands for: the session's identity,
// datacenter and data, not its last access. Two writes with the same
// digest are a TTL refresh, which keeps the version.
func digest(s *session.Session) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%s", s.ID, s.Datacenter, s.DisplacedFrom)
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		fmt.Fprintf(h, "\x00%s=%s", k, s.Data[k])
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// body is a session's JSON without its opening brace, for a script to put
// behind the header. The version lives in the header only.
func body(s session.Session) (string, error) {
	s.Version = 0
	b, err := encode(s)
	if err != nil {
		return "", err
	}
	return string(b[1:]), nil
}

const tombstoneBody = `"deleted":true}`

// putReplicated is Put for a replicated store: one script, which writes
// each session unless a newer version is stored, and logs what it wrote.
func (s *Store) putReplicated(ctx context.Context, sessions []session.Session, ms int64) error {
	keys := make([]string, 0, len(sessions)+3)
	keys = append(keys, s.rk.stream, s.rk.role, s.rk.seq)
	args := s.writeArgs(len(sessions))
	ttl := strconv.FormatInt(ms, 10)
	for i := range sessions {
		b, err := body(sessions[i])
		if err != nil {
			return fmt.Errorf("redisstore: put %s: %w", s.key(sessions[i].Key()), err)
		}
		ver, err := s.repl.IDs.Next()
		if err != nil {
			return fmt.Errorf("redisstore: put: version: %w", err)
		}
		name := sessions[i].Key().String()
		keys = append(keys, s.prefix+name)
		args = append(args, "put", name, ver.String(), sessions[i].Version.String(), digest(&sessions[i]), b, ttl)
	}
	return s.runWrite(ctx, "put", fmt.Sprintf("%d sessions", len(sessions)), keys, args)
}

func (s *Store) writeArgs(n int) []any {
	args := make([]any, 0, 3+7*n)
	return append(args, s.repl.MaxLen, boolArg(s.repl.ActivePassive), s.repl.Datacenter)
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (s *Store) runWrite(ctx context.Context, op, what string, keys []string, args []any) error {
	res, err := writeScript.Run(ctx, s.c, keys, args...).Int64Slice()
	if err != nil {
		return wrap(ctx, op, what, err)
	}
	if len(res) != 4 {
		return fmt.Errorf("redisstore: %s %s: script replied %d values, want 4", op, what, len(res))
	}
	if res[2] > 0 {
		if s.repl.Refused != nil {
			s.repl.Refused(int(res[2]))
		}
		if op == "delete" {
			return ErrStandby
		}
	}
	if res[3] > 0 && s.repl.Stale != nil {
		s.repl.Stale(int(res[3]))
	}
	return nil
}

// deleteReplicated leaves a tombstone with a new version and logs it.
func (s *Store) deleteReplicated(ctx context.Context, k session.Key) error {
	ver, err := s.repl.IDs.Next()
	if err != nil {
		return fmt.Errorf("redisstore: delete: version: %w", err)
	}
	ms, _ := millis(cmp(s.repl.TombstoneTTL, DefaultTombstoneTTL))
	name := k.String()
	args := append(s.writeArgs(1), "del", name, ver.String(), "0", tombstoneDigest, tombstoneBody, strconv.FormatInt(ms, 10))
	return s.runWrite(ctx, "delete", s.prefix+name, []string{s.rk.stream, s.rk.role, s.rk.seq, s.prefix + name}, args)
}

// getOrCreateReplicated: see create.lua. On a standby it returns sess
// unstored with created false: the caller answers with its own pick.
func (s *Store) getOrCreateReplicated(ctx context.Context, sess session.Session, ms int64) (session.Session, bool, error) {
	key := s.key(sess.Key())
	b, err := body(sess)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w", key, err)
	}
	ver := sess.ID
	if ver == 0 {
		if ver, err = s.repl.IDs.Next(); err != nil {
			return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: version: %w", key, err)
		}
	}
	res, err := createScript.Run(ctx, s.c, []string{key, s.rk.stream, s.rk.role, s.rk.seq},
		s.repl.MaxLen, boolArg(s.repl.ActivePassive), s.repl.Datacenter, sess.Key().String(),
		ver.String(), digest(&sess), b, ms).Slice()
	if wrongType(err) {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w (%w)", key, session.ErrCorrupt, err)
	}
	if err != nil {
		return session.Session{}, false, wrap(ctx, "get-or-create", key, err)
	}
	stored, flag, err := parseFlagReply(res)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w", key, err)
	}
	switch flag {
	case 1:
		sess.Version = ver
		return sess, true, nil
	case 2:
		if s.repl.Refused != nil {
			s.repl.Refused(1)
		}
		return sess, false, nil
	}
	got, err := decode(stored, sess.Key())
	if err != nil {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w", key, err)
	}
	return got, false, nil
}

func parseFlagReply(res []any) (string, int64, error) {
	if len(res) != 2 {
		return "", 0, fmt.Errorf("script replied %d values, want 2", len(res))
	}
	v, ok := res[0].(string)
	if !ok {
		return "", 0, fmt.Errorf("script replied value of type %T, want string", res[0])
	}
	flag, ok := res[1].(int64)
	if !ok {
		return "", 0, fmt.Errorf("script replied flag of type %T, want integer", res[1])
	}
	return v, flag, nil
}

// Change is one entry of a change log, or one session read by a resync.
type Change struct {
	ID      string // stream ID, "" from a resync
	N       int64  // sequence number in the log, 0 from a resync
	Op      string // put, del or promote
	Key     string // the session's name: the key without its prefix
	Version string // decimal idgen ID; for promote, the term
	Origin  string // datacenter that made the change
	Digest  string
	VV      string // version vector: dc=version;...
	Body    string
	TTL     int64 // milliseconds; 0: none
}

// Time is when the peer's Redis logged the change (the stream ID's
// milliseconds), the zero time for a resync.
func (c Change) Time() time.Time { return IDTime(c.ID) }

// IDTime is a stream ID's time.
func IDTime(id string) time.Time {
	ms, _, ok := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// CompareIDs orders stream IDs ("ms-seq"); "" is 0-0.
func CompareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	if am != bm {
		return compareU(am, bm)
	}
	return compareU(as, bs)
}

func compareU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// Malformed is a log entry that is not a change; it is skipped.
type Malformed struct {
	ID  string
	Err error
}

// Batch is what ReadChanges read.
type Batch struct {
	Changes   []Change
	Malformed []Malformed
	// Last is the ID of the last entry read, malformed or not: the
	// checkpoint once the batch is applied. "" when nothing was read.
	// LastN is the last sequence number read (the checkpoint's, if none).
	Last  string
	LastN int64
	// Gap: entries after the checkpoint were trimmed before they were
	// read, so the log alone cannot bring a replica up to date.
	Gap bool
}

var (
	// Control characters are excluded as well as quote and backslash: a
	// JSON string cannot hold them raw, and these fields are rendered
	// into one.
	vvPattern     = regexp.MustCompile(`^([^=;"\\\x00-\x1f]+=[1-9][0-9]*)(;[^=;"\\\x00-\x1f]+=[1-9][0-9]*)*$`)
	digits        = regexp.MustCompile(`^(0|[1-9][0-9]{0,18})$`)
	plainPattern  = regexp.MustCompile(`^[^"\\\x00-\x1f]+$`)
	maxChangeBody = 64 << 10
)

// parseChange checks an entry as thoroughly as a script needs: every
// field a script renders into a value must keep that value JSON.
func parseChange(m redis.XMessage) (Change, error) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	c := Change{ID: m.ID, Op: str("op"), Key: str("key"), Version: str("v"), Origin: str("o"),
		Digest: str("d"), VV: str("vv"), Body: str("body")}
	c.N = seqOf(m)
	if c.N <= 0 {
		return c, fmt.Errorf("n: %q is not a sequence number", str("n"))
	}
	if !digits.MatchString(c.Version) || c.Version == "0" {
		return c, fmt.Errorf("v: %q is not a version", c.Version)
	}
	if !plainPattern.MatchString(c.Origin) {
		return c, fmt.Errorf("o: %q is not a datacenter", c.Origin)
	}
	switch c.Op {
	case "promote":
		return c, nil
	case "put", "del":
	default:
		return c, fmt.Errorf("op: %q is not put, del or promote", c.Op)
	}
	if c.Key == "" || !plainPattern.MatchString(c.Digest) || !vvPattern.MatchString(c.VV) {
		return c, fmt.Errorf("key %q, d %q or vv %q is missing or not plain text", c.Key, c.Digest, c.VV)
	}
	ttl, err := strconv.ParseInt(str("ttl"), 10, 64)
	if err != nil || ttl < 0 {
		return c, fmt.Errorf("ttl: %q is not milliseconds", str("ttl"))
	}
	c.TTL = ttl
	// The body follows the header's members: "}" alone would complete
	// "{" but leave the rendered value with a trailing comma.
	if len(c.Body) > maxChangeBody || !json.Valid([]byte(`{"header":0,`+c.Body)) {
		return c, fmt.Errorf("body: not the rest of a JSON object")
	}
	return c, nil
}

// seqOf is an entry's sequence number, 0 if it has none.
func seqOf(m redis.XMessage) int64 {
	s, _ := m.Values["n"].(string)
	if !digits.MatchString(s) {
		return 0
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// ReadChanges reads up to count log entries after the ID after ("" or
// "0-0": from the start), whose sequence number is afterN, and in the
// same transaction the log's sequence counter, to tell whether entries
// after it were trimmed away (Gap): the first entry read must be afterN+1,
// and with none read the counter must still be afterN. A counter behind
// afterN means the peer's log started over (its Redis lost its data):
// that is a gap too. Entries that are not changes come back in
// Malformed, in order with the rest.
func (s *Store) ReadChanges(ctx context.Context, after string, afterN, count int64) (Batch, error) {
	after = cmp(after, "0-0")
	var rng *redis.XMessageSliceCmd
	var seq *redis.StringCmd
	_, err := s.u.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rng = p.XRangeN(ctx, s.rk.stream, "("+after, "+", count)
		seq = p.Get(ctx, s.rk.seq)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Batch{}, wrap(ctx, "read changes", s.rk.stream, err)
	}
	counter, _ := strconv.ParseInt(seq.Val(), 10, 64)
	b, numbered := batchOf(rng.Val(), afterN)
	b.Gap = b.Gap || counter < afterN || !numbered && counter > afterN
	return b, nil
}

// batchOf sorts entries read after the entry numbered afterN into changes
// and malformed entries. The first numbered entry must be afterN+1, or
// some were trimmed before they were read (Gap). numbered reports whether
// any entry had a number to check.
func batchOf(msgs []redis.XMessage, afterN int64) (b Batch, numbered bool) {
	b.LastN = afterN
	for _, m := range msgs {
		b.Last = m.ID
		if n := seqOf(m); n > 0 {
			if !numbered {
				numbered, b.Gap = true, n != afterN+1
			}
			b.LastN = n
		}
		c, err := parseChange(m)
		if err != nil {
			b.Malformed = append(b.Malformed, Malformed{ID: m.ID, Err: err})
			continue
		}
		b.Changes = append(b.Changes, c)
	}
	return b, numbered
}

// WaitChanges blocks up to block for entries after the ID after (numbered
// afterN), and returns up to count of them as ReadChanges does. Waiting
// and reading are one round trip, which on a WAN is most of the lag. With
// nothing read it cannot tell a trimmed log from an idle one; the caller
// reads again with ReadChanges.
func (s *Store) WaitChanges(ctx context.Context, after string, afterN, count int64, block time.Duration) (Batch, error) {
	res, err := s.u.XRead(ctx, &redis.XReadArgs{Streams: []string{s.rk.stream, cmp(after, "0-0")}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) || err == nil && len(res) == 0 {
		return Batch{LastN: afterN}, nil
	}
	if err != nil {
		return Batch{}, wrap(ctx, "wait for changes", s.rk.stream, err)
	}
	b, _ := batchOf(res[0].Messages, afterN)
	return b, nil
}

// LastChangeID is the ID of the last entry ever added to the log ("0-0"
// for none) and its sequence number, read at once: the point a resync
// must continue from, and what a promote must have applied.
func (s *Store) LastChangeID(ctx context.Context) (string, int64, error) {
	var last *redis.XMessageSliceCmd
	var seq *redis.StringCmd
	_, err := s.u.TxPipelined(ctx, func(p redis.Pipeliner) error {
		last = p.XRevRangeN(ctx, s.rk.stream, "+", "-", 1)
		seq = p.Get(ctx, s.rk.seq)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", 0, wrap(ctx, "log end", s.rk.stream, err)
	}
	n, _ := strconv.ParseInt(seq.Val(), 10, 64)
	if len(last.Val()) == 0 {
		return "0-0", n, nil
	}
	return last.Val()[0].ID, n, nil
}

// ScanChanges reads one SCAN step of the session keyspace as changes, for
// a resync. It returns the next cursor, 0 when done.
func (s *Store) ScanChanges(ctx context.Context, cursor uint64, count int64) ([]Change, uint64, error) {
	keys, next, err := s.u.Scan(ctx, cursor, globEscape(s.prefix)+"*", count).Result()
	if err != nil {
		return nil, 0, wrap(ctx, "scan", s.prefix+"*", err)
	}
	if len(keys) == 0 {
		return nil, next, nil
	}
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	_, err = s.u.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			gets[i] = p.Get(ctx, k)
			ttls[i] = p.PTTL(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) && !wrongType(err) {
		return nil, 0, wrap(ctx, "scan values", fmt.Sprintf("%d keys", len(keys)), err)
	}
	var out []Change
	for i, k := range keys {
		v, err := gets[i].Result()
		ttl, terr := ttls[i].Result()
		if err != nil || terr != nil || ttl == -2 {
			continue // gone since the scan, or not a string
		}
		c, ok := valueChange(strings.TrimPrefix(k, s.prefix), v)
		if !ok {
			continue
		}
		if ttl > 0 {
			c.TTL = max(ttl.Milliseconds(), 1)
		}
		out = append(out, c)
	}
	return out, next, nil
}

// valueChange turns a stored value into the change that would store it.
// A value without a header (written before replication) has version 0,
// which any versioned value beats.
func valueChange(name, v string) (Change, bool) {
	c := Change{Op: "put", Key: name, Version: "0"}
	if m := header.FindStringSubmatch(v); m != nil {
		c.Version, c.Origin, c.Digest, c.VV, c.Body = m[1], m[2], m[3], m[4], v[len(m[0]):]
		if c.Digest == tombstoneDigest {
			c.Op = "del"
		}
		return c, true
	}
	if !strings.HasPrefix(v, "{") || !json.Valid([]byte(v)) {
		return c, false
	}
	c.Body = v[1:]
	return c, true
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ApplyResult counts what Apply did.
type ApplyResult struct {
	Applied   int // changes that replaced what was stored (or stored anew)
	Refreshed int // the stored version again: a TTL refresh
	Stale     int // older than what is stored, or concurrent and older: kept ours
	Skipped   int // at or before the checkpoint: applied before
	Demoted   int // promote entries that made this datacenter a standby
	// Conflicts are the keys where the change and what was stored were
	// concurrent (neither version vector covers the other).
	Conflicts []string
}

// Apply applies a peer's changes and sets the peer's checkpoint to
// checkpoint ("": leave it) in one script: see apply.lua. resync changes
// carry no IDs and are applied whatever the checkpoint.
func (s *Store) Apply(ctx context.Context, peer, checkpoint string, checkpointN int64, changes []Change, resync bool) (ApplyResult, error) {
	keys := make([]string, 0, 3+len(changes))
	keys = append(keys, s.rk.checkpoints, s.rk.processed, s.rk.role)
	args := make([]any, 0, 3+8*len(changes))
	mode := "log"
	if resync {
		mode = "resync"
	}
	args = append(args, peer, checkpoint, mode, checkpointN)
	for _, c := range changes {
		if c.Op == "promote" {
			keys = append(keys, s.rk.role)
		} else {
			keys = append(keys, s.prefix+c.Key)
		}
		args = append(args, cmp(c.ID, "0-0"), c.Op, c.Version, c.Origin, c.Digest, c.VV, c.Body, c.TTL)
	}
	res, err := applyScript.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return ApplyResult{}, wrap(ctx, "apply", fmt.Sprintf("%d changes from %s", len(changes), peer), err)
	}
	if len(res) < 6 {
		return ApplyResult{}, fmt.Errorf("redisstore: apply: script replied %d values, want 6 or more", len(res))
	}
	n := func(i int) int { v, _ := res[i].(int64); return int(v) }
	r := ApplyResult{Applied: n(0), Refreshed: n(1), Stale: n(2), Skipped: n(3), Demoted: n(4)}
	for _, k := range res[6:] {
		ks, _ := k.(string)
		r.Conflicts = append(r.Conflicts, strings.TrimPrefix(ks, s.prefix))
	}
	return r, nil
}

// Checkpoint is the ID of the last entry of peer's log applied here (""
// when none has been) and its sequence number.
func (s *Store) Checkpoint(ctx context.Context, peer string) (string, int64, error) {
	v, err := s.u.HMGet(ctx, s.rk.checkpoints, peer, peer+"#n").Result()
	if err != nil {
		return "", 0, wrap(ctx, "checkpoint", peer, err)
	}
	id, _ := v[0].(string)
	ns, _ := v[1].(string)
	n, _ := strconv.ParseInt(ns, 10, 64)
	return id, n, nil
}

// Processed is how many of peer's log entries this datacenter has taken
// (applied, refreshed, kept older or obeyed), over every replicator's
// life: Apply adds to it in the script that moves the checkpoint, so it
// exceeds the number of entries only if one was taken twice.
func (s *Store) Processed(ctx context.Context, peer string) (int64, error) {
	v, err := s.u.HGet(ctx, s.rk.processed, peer).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap(ctx, "processed", peer, err)
	}
	return v, nil
}

// RoleState is the role hash: this datacenter's role in active-passive
// replication, the term it was set in (an ID; 0 before any promote), and
// the datacenter that term made primary.
type RoleState struct {
	Role    string
	Term    string
	Primary string
}

// Role reads the role hash; Role is "" when none is stored.
func (s *Store) Role(ctx context.Context) (RoleState, error) {
	m, err := s.u.HGetAll(ctx, s.rk.role).Result()
	if err != nil {
		return RoleState{}, wrap(ctx, "role", s.rk.role, err)
	}
	return RoleState{Role: m["role"], Term: cmp(m["term"], "0"), Primary: m["primary"]}, nil
}

// InitRole stores role with term 0 unless a role is stored already: the
// configured role applies only until a promote decides otherwise.
func (s *Store) InitRole(ctx context.Context, role, primary string) error {
	_, err := s.u.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, s.rk.role, "role", role)
		p.HSetNX(ctx, s.rk.role, "term", "0")
		p.HSetNX(ctx, s.rk.role, "primary", primary)
		return nil
	})
	if err != nil {
		return wrap(ctx, "init role", s.rk.role, err)
	}
	return nil
}

// Promote makes this datacenter primary in term, unless it knows a newer
// term, and logs it for the peers. It reports whether the role changed.
func (s *Store) Promote(ctx context.Context, term idgen.ID, dc string) (bool, error) {
	return s.role(ctx, "promote", term, dc)
}

// Fence makes this datacenter a standby of dc in term, unless it knows a
// newer term: from then on its scripts refuse session writes, so its log
// ends where it is.
func (s *Store) Fence(ctx context.Context, term idgen.ID, dc string) (bool, error) {
	return s.role(ctx, "fence", term, dc)
}

func (s *Store) role(ctx context.Context, op string, term idgen.ID, dc string) (bool, error) {
	n, err := promoteScript.Run(ctx, s.c, []string{s.rk.role, s.rk.stream, s.rk.seq}, op, term.String(), dc, cmp(s.repl.MaxLen, DefaultMaxLen)).Int64()
	if err != nil {
		return false, wrap(ctx, op, s.rk.role, err)
	}
	return n == 1, nil
}

// tombstoneValue reports whether a stored value is a deleted session's
// tombstone, which Get treats as no session.
func tombstoneValue[T string | []byte](b T) bool {
	m := header.FindSubmatch([]byte(b))
	return m != nil && string(m[3]) == tombstoneDigest
}
