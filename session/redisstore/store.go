package redisstore

import (
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/gslbd/gslbd/session"
)

// Defaults for the zero fields of Options.
const (
	DefaultKeyPrefix = "gslb:session:"
	// DefaultDialTimeout is long next to the DNS budget on purpose: a
	// connection dialled by the background probe or a write should be able
	// to cross a WAN, and the DNS path's own deadline is shorter anyway.
	DefaultDialTimeout = time.Second
	// DefaultReadTimeout and DefaultWriteTimeout bound calls whose context
	// has no deadline; calls with one use it when it is sooner.
	DefaultReadTimeout  = 100 * time.Millisecond
	DefaultWriteTimeout = 100 * time.Millisecond
	DefaultPoolSize     = 32
	// DefaultPoolTimeout: a query that finds every connection busy gives up
	// rather than queue behind the others; the caller falls back to local
	// affinity.
	DefaultPoolTimeout = 5 * time.Millisecond
)

// Options configure a Store. The zero value of each field but Addrs
// means its default.
type Options struct {
	// Addrs are host:port addresses: one Redis server; or, with
	// MasterName, the Sentinels; or, two or more without MasterName, the
	// seed nodes of a Cluster.
	Addrs []string
	// MasterName selects Sentinel: the name of the monitored master.
	MasterName string
	// Username and Password authenticate to Redis (not to Sentinel). The
	// caller reads Password from a file; it is never logged, and String
	// and LogValue leave it out.
	Username string
	Password string
	// DB is the database number; Cluster has only 0.
	DB int
	// TLS, if not nil, is used for every connection; nil means plaintext.
	TLS *tls.Config
	// KeyPrefix goes before each session.Key.String() to make the Redis
	// key. Default DefaultKeyPrefix.
	KeyPrefix string

	DialTimeout  time.Duration // per dial; default DefaultDialTimeout
	ReadTimeout  time.Duration // per reply; default DefaultReadTimeout
	WriteTimeout time.Duration // per request; default DefaultWriteTimeout
	PoolTimeout  time.Duration // wait for a free connection; default DefaultPoolTimeout
	PoolSize     int           // connections per node; default DefaultPoolSize

	// Replication, if not nil, versions every write and records it in a
	// change log for peers to replicate (replication.go).
	Replication *Replication
}

// String describes o without its password, so that logging Options by
// mistake does not leak it.
func (o Options) String() string {
	pw := ""
	if o.Password != "" {
		pw = " password=<redacted>"
	}
	return fmt.Sprintf("redisstore.Options{addrs=%v master=%q username=%q%s db=%d tls=%t prefix=%q}",
		o.Addrs, o.MasterName, o.Username, pw, o.DB, o.TLS != nil, o.KeyPrefix)
}

// GoString is String, for %#v.
func (o Options) GoString() string { return o.String() }

// LogValue implements slog.LogValuer, without the password.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("addrs", o.Addrs),
		slog.String("master", o.MasterName),
		slog.String("username", o.Username),
		slog.Bool("password_set", o.Password != ""),
		slog.Int("db", o.DB),
		slog.Bool("tls", o.TLS != nil),
		slog.String("key_prefix", o.KeyPrefix),
	)
}

// validate reports every problem with o at once. Its messages name
// addresses but never the password.
func (o Options) validate() error {
	var errs []error
	if len(o.Addrs) == 0 {
		errs = append(errs, errors.New("addrs: at least one address is required"))
	}
	for i, a := range o.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("addrs[%d]: %q is not host:port", i, a))
			continue
		}
		if host == "" {
			errs = append(errs, fmt.Errorf("addrs[%d]: %q has no host", i, a))
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			errs = append(errs, fmt.Errorf("addrs[%d]: %q has no valid port", i, a))
		}
	}
	if o.DB < 0 {
		errs = append(errs, fmt.Errorf("db: %d is negative", o.DB))
	}
	if o.DB != 0 && o.MasterName == "" && len(o.Addrs) > 1 {
		errs = append(errs, fmt.Errorf("db: %d with %d addrs: a Cluster has only database 0", o.DB, len(o.Addrs)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"dial_timeout", o.DialTimeout},
		{"read_timeout", o.ReadTimeout},
		{"write_timeout", o.WriteTimeout},
		{"pool_timeout", o.PoolTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s is negative", d.name, d.v))
		}
	}
	if o.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("pool_size: %d is negative", o.PoolSize))
	}
	if o.Replication != nil {
		errs = append(errs, o.Replication.validate(o)...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("redisstore: options: %w", err)
	}
	return nil
}

func orDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// universal translates o, with defaults applied, into go-redis options.
func (o Options) universal() *redis.UniversalOptions {
	poolSize := o.PoolSize
	if poolSize == 0 {
		poolSize = DefaultPoolSize
	}
	return &redis.UniversalOptions{
		Addrs:      o.Addrs,
		MasterName: o.MasterName,
		Username:   o.Username,
		Password:   o.Password,
		DB:         o.DB,
		TLSConfig:  o.TLS,

		// The socket deadline is the sooner of ctx's deadline and the
		// Read/WriteTimeout; without this, go-redis uses
		// context.Background() for socket I/O and a 2ms budget would wait
		// out the whole ReadTimeout.
		ContextTimeoutEnabled: true,
		// -1, not 0 (which means the default, 3): a retry cannot fit in
		// the budget, and the caller's breaker decides what happens next.
		MaxRetries: -1,
		// One dial attempt; go-redis's default is 5 with 100ms between,
		// all on the caller's path.
		DialerRetries: 1,
		DialTimeout:   orDuration(o.DialTimeout, DefaultDialTimeout),
		ReadTimeout:   orDuration(o.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:  orDuration(o.WriteTimeout, DefaultWriteTimeout),
		PoolTimeout:   orDuration(o.PoolTimeout, DefaultPoolTimeout),
		PoolSize:      poolSize,

		// A connection dialled on the DNS path does its handshake inside
		// the query's budget, so skip the optional round trips: CLIENT
		// SETINFO and CLIENT MAINT_NOTIFICATIONS (Redis Enterprise
		// maintenance hand-offs, which gslbd does not rely on).
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// client is what Store needs of go-redis: the narrowest interface that
// *redis.Client, *redis.ClusterClient and a Sentinel-backed client all
// satisfy.
type client interface {
	redis.Scripter
	Get(ctx context.Context, key string) *redis.StringCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
	Ping(ctx context.Context) *redis.StatusCmd
	AddHook(redis.Hook)
	Close() error
}

//go:embed getorcreate.lua
var getOrCreateSrc string

// getOrCreate is sent as EVALSHA; a server without it in its script cache
// (first use, restart, failover, SCRIPT FLUSH) answers NOSCRIPT and the
// script is sent again as EVAL, which caches it there.
var getOrCreate = redis.NewScript(getOrCreateSrc)

// Store is a session.Store in Redis. It is safe for concurrent use.
type Store struct {
	c      client
	u      redis.UniversalClient // the same client, for replication's commands
	prefix string
	repl   *Replication // nil: not replicated
	rk     replKeys
}

var _ session.Store = (*Store)(nil)

// New returns a Store for o. It does not connect, so it succeeds while
// Redis is unreachable; it fails only for invalid options.
func New(o Options) (*Store, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	prefix := o.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	u := redis.NewUniversalClient(o.universal())
	s := &Store{c: u, u: u, prefix: prefix}
	if o.Replication != nil {
		r := *o.Replication
		r.Namespace = cmp(r.Namespace, DefaultNamespace)
		r.MaxLen = cmp(r.MaxLen, DefaultMaxLen)
		r.TombstoneTTL = cmp(r.TombstoneTTL, DefaultTombstoneTTL)
		s.repl, s.rk = &r, newReplKeys(r.Namespace)
	}
	return s, nil
}

// AddHook adds a go-redis hook to the client, for metrics or tracing. Add
// hooks before the Store is used. Each round trip reaches a hook once: a
// command (GetOrCreate's EVALSHA, and its EVAL after a NOSCRIPT; Get;
// Delete; Ping) through ProcessHook, and Put's pipeline through
// ProcessPipelineHook, with all its commands. In Cluster, a pipeline whose
// keys live on several nodes is one round trip per node, sent in parallel.
// Each new connection also shows: its dial in DialHook and its handshake
// (HELLO, one round trip) in ProcessHook; Put's pipelines have a pool of
// connections of their own, so the first Put dials too.
func (s *Store) AddHook(h redis.Hook) { s.c.AddHook(h) }

// Close closes the client's connections. Calls after Close fail.
func (s *Store) Close() error {
	if err := s.c.Close(); err != nil {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}

// Ping checks that Redis answers; it is the circuit breaker's probe.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return wrap(ctx, "ping", "", err)
	}
	return nil
}

// GetOrCreate implements session.Store in one round trip (two when the
// server does not have the script cached yet). When it finds a value that
// is not a session it returns an error wrapping session.ErrCorrupt; the
// value stays until the caller overwrites it with Put.
func (s *Store) GetOrCreate(ctx context.Context, sess session.Session, ttl time.Duration) (session.Session, bool, error) {
	key := s.key(sess.Key())
	ms, err := millis(ttl)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w", key, err)
	}
	if s.repl != nil {
		return s.getOrCreateReplicated(ctx, sess, ms)
	}
	val, err := encode(sess)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w", key, err)
	}
	res, err := getOrCreate.Run(ctx, s.c, []string{key}, val, ms).Slice()
	if wrongType(err) {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w (%w)", key, session.ErrCorrupt, err)
	}
	if err != nil {
		return session.Session{}, false, wrap(ctx, "get-or-create", key, err)
	}
	stored, created, err := parseReply(res)
	if err != nil {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w", key, err)
	}
	if created {
		// The script echoes what it stored, which is sess: no need to
		// decode it, and the caller gets its own value back unchanged.
		return sess, true, nil
	}
	got, err := decode(stored, sess.Key())
	if err != nil {
		return session.Session{}, false, fmt.Errorf("redisstore: get-or-create %s: %w", key, err)
	}
	return got, false, nil
}

// parseReply reads the script's {value, created} reply.
func parseReply(res []any) (string, bool, error) {
	if len(res) != 2 {
		return "", false, fmt.Errorf("script replied %d values, want 2", len(res))
	}
	v, ok := res[0].(string)
	if !ok {
		return "", false, fmt.Errorf("script replied value of type %T, want string", res[0])
	}
	flag, ok := res[1].(int64)
	if !ok {
		return "", false, fmt.Errorf("script replied flag of type %T, want integer", res[1])
	}
	return v, flag == 1, nil
}

// Get implements session.Store. A missing key is an error wrapping
// session.ErrNotFound, and a value that is not a session one wrapping
// session.ErrCorrupt.
func (s *Store) Get(ctx context.Context, k session.Key) (session.Session, error) {
	key := s.key(k)
	b, err := s.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return session.Session{}, fmt.Errorf("redisstore: get %s: %w", key, session.ErrNotFound)
	}
	if wrongType(err) {
		return session.Session{}, fmt.Errorf("redisstore: get %s: %w (%w)", key, session.ErrCorrupt, err)
	}
	if err != nil {
		return session.Session{}, wrap(ctx, "get", key, err)
	}
	if s.repl != nil && tombstoneValue(b) {
		return session.Session{}, fmt.Errorf("redisstore: get %s: %w (deleted)", key, session.ErrNotFound)
	}
	got, err := decode(b, k)
	if err != nil {
		return session.Session{}, fmt.Errorf("redisstore: get %s: %w", key, err)
	}
	return got, nil
}

// Put implements session.Store: one pipelined round trip of SETs with
// the TTL (per node, in Cluster). Nothing is sent if a session fails to
// encode. A failed Put may have stored some of the sessions.
func (s *Store) Put(ctx context.Context, sessions []session.Session, ttl time.Duration) error {
	if len(sessions) == 0 {
		return nil
	}
	ms, err := millis(ttl)
	if err != nil {
		return fmt.Errorf("redisstore: put %d sessions: %w", len(sessions), err)
	}
	if s.repl != nil {
		return s.putReplicated(ctx, sessions, ms)
	}
	ttl = time.Duration(ms) * time.Millisecond // what the script would store
	keys := make([]string, len(sessions))
	vals := make([][]byte, len(sessions))
	for i := range sessions {
		keys[i] = s.key(sessions[i].Key())
		if vals[i], err = encode(sessions[i]); err != nil {
			return fmt.Errorf("redisstore: put %s: %w", keys[i], err)
		}
	}
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range keys {
			// SET with PX, or EX when ttl is whole seconds: the same.
			p.Set(ctx, keys[i], vals[i], ttl)
		}
		return nil
	})
	if err != nil {
		return wrap(ctx, "put", fmt.Sprintf("%d sessions", len(sessions)), err)
	}
	return nil
}

// Delete implements session.Store.
// A replicated store leaves a tombstone instead, and on a standby returns
// ErrStandby.
func (s *Store) Delete(ctx context.Context, k session.Key) error {
	if s.repl != nil {
		return s.deleteReplicated(ctx, k)
	}
	key := s.key(k)
	if err := s.c.Del(ctx, key).Err(); err != nil {
		return wrap(ctx, "delete", key, err)
	}
	return nil
}

func (s *Store) key(k session.Key) string { return s.prefix + k.String() }

// millis converts a TTL to whole milliseconds for PX, rounding up so that
// a positive TTL never becomes 0 (which SET rejects) or shorter.
func millis(ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("ttl %s is not positive", ttl)
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond), nil
}

// encode returns the JSON that Redis stores for s.
func encode(s session.Session) ([]byte, error) {
	if s.Datacenter == "" {
		// decode would call it corrupt; don't store what can't be read.
		return nil, errors.New("session has no datacenter")
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode session: %w", err)
	}
	return b, nil
}

// decode parses a stored value, which must be a session for key k with a
// datacenter: JSON such as null or {} decodes without error but is no
// session. Unknown fields are allowed, so that during a rolling upgrade an
// older instance does not take a newer one's sessions for corrupt and
// overwrite them.
func decode[T string | []byte](b T, k session.Key) (session.Session, error) {
	var s session.Session
	if err := json.Unmarshal([]byte(b), &s); err != nil {
		return session.Session{}, fmt.Errorf("%w: %w", session.ErrCorrupt, err)
	}
	if s.Key() != k {
		return session.Session{}, fmt.Errorf("%w: it is for %s", session.ErrCorrupt, s.Key().String())
	}
	if s.Datacenter == "" {
		return session.Session{}, fmt.Errorf("%w: it has no datacenter", session.ErrCorrupt)
	}
	return s, nil
}

// wrongType reports whether err is Redis saying the key holds another
// type than a string: not a session either, and SET replaces it. Redis
// starts the message with WRONGTYPE, also from within a script; miniredis
// puts it inside a script error.
func wrongType(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(re.Error(), "WRONGTYPE")
}

// wrap prefixes a go-redis error with the operation and key. When ctx's
// deadline has passed it also wraps context.DeadlineExceeded: go-redis
// reports a socket deadline as a net timeout, not as the context's error,
// and callers should be able to tell "out of budget" with errors.Is. The
// deadline is compared with the clock, not taken from ctx.Err, because the
// socket deadline and the context's timer are set for the same instant
// and the socket may win.
func wrap(ctx context.Context, op, what string, err error) error {
	if what != "" {
		op += " " + what
	}
	if cerr := ctxErr(ctx); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redisstore: %s: %w (%w)", op, cerr, err)
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
