package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gslbd/gslbd/gslb/acme"
	"github.com/gslbd/gslbd/gslb/config"
)

// redisACMEStore keeps the ACME records in one Redis hash shared by the
// fleet: field the record's identity (owner and strings), value the
// record with its expiry. It lives here rather than in gslb/acme because
// nothing under gslb may import go-redis.
type redisACMEStore struct {
	c       redis.UniversalClient
	key     string // the hash
	channel string // where writers announce a change
	sub     *redis.PubSub
}

// redisTxRetries bounds the optimistic transaction's retries when another
// instance writes between our read and our write.
const redisTxRetries = 5

func newRedisACMEStore(rc config.SessionRedis) (*redisACMEStore, error) {
	// Off the query path: an update may wait for Redis as long as its
	// client waits for the answer.
	c, err := offPathRedis(rc)
	if err != nil {
		return nil, err
	}
	return &redisACMEStore{c: c, key: rc.KeyPrefix + "acme", channel: rc.KeyPrefix + "acme:changed"}, nil
}

// redisTLS builds the TLS configuration sessions.redis.tls describes; nil
// when TLS is off.
func redisTLS(t config.RedisTLS) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sessions.redis.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("sessions.redis.tls: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

type redisField struct {
	Name string   `json:"name"`
	Txt  []string `json:"txt"`
}

func decodeRecords(m map[string]string) ([]acme.Record, error) {
	out := make([]acme.Record, 0, len(m))
	for field, v := range m {
		var r acme.Record
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, fmt.Errorf("acme: Redis field %q does not hold a record: %w", field, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Load implements acme.Store.
func (s *redisACMEStore) Load(ctx context.Context) ([]acme.Record, error) {
	m, err := s.c.HGetAll(ctx, s.key).Result()
	if err != nil {
		return nil, fmt.Errorf("acme: reading %s from Redis: %w", s.key, err)
	}
	return decodeRecords(m)
}

// Update implements acme.Store as an optimistic transaction: WATCH the
// hash, read it, compute, and replace it in MULTI/EXEC, which fails (and
// is retried) when another instance wrote in between. The change is
// announced in the same transaction.
func (s *redisACMEStore) Update(ctx context.Context, apply func([]acme.Record) ([]acme.Record, error)) ([]acme.Record, error) {
	var stored []acme.Record
	txn := func(tx *redis.Tx) error {
		m, err := tx.HGetAll(ctx, s.key).Result()
		if err != nil {
			return err
		}
		cur, err := decodeRecords(m)
		if err != nil {
			return err
		}
		next, err := apply(cur)
		if err != nil {
			return err
		}
		fields := make([]any, 0, 2*len(next))
		var last time.Time
		for _, r := range next {
			f, _ := json.Marshal(redisField{Name: r.Name, Txt: r.Txt})
			v, _ := json.Marshal(r)
			fields = append(fields, string(f), string(v))
			if r.Expires.After(last) {
				last = r.Expires
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, s.key)
			if len(next) > 0 {
				p.HSet(ctx, s.key, fields...)
				// The hash outlives its last record by nothing, so a
				// fleet that stops issuing leaves no key behind.
				p.PExpireAt(ctx, s.key, last)
			}
			p.Publish(ctx, s.channel, "changed")
			return nil
		})
		if err == nil {
			stored = next
		}
		return err
	}
	for range redisTxRetries {
		err := s.c.Watch(ctx, txn, s.key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return stored, nil
	}
	return nil, fmt.Errorf("acme: %s changed under %d attempts to update it", s.key, redisTxRetries)
}

// watch delivers a note for every change any instance announces, on
// the subscription subscribe made. go-redis
// resubscribes after a lost connection; what was announced meanwhile is
// caught by the periodic re-read.
func (s *redisACMEStore) watch(ctx context.Context) <-chan struct{} {
	notes := make(chan struct{}, 1)
	go func() {
		defer s.sub.Close()
		msgs := s.sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-msgs:
				if !ok {
					return
				}
				select {
				case notes <- struct{}{}:
				default: // one pending note covers any number of changes
				}
			}
		}
	}()
	return notes
}

// subscribe subscribes to the change channel and waits, up to ctx, for
// Redis to confirm; when it does not, go-redis keeps trying once watch
// reads the subscription.
func (s *redisACMEStore) subscribe(ctx context.Context) error {
	s.sub = s.c.Subscribe(ctx)
	if err := s.sub.Subscribe(ctx, s.channel); err != nil {
		return err
	}
	// SUBSCRIBE is only sent above; its confirmation says Redis will
	// deliver what is published from now on.
	_, err := s.sub.ReceiveTimeout(ctx, time.Second)
	return err
}

func (s *redisACMEStore) Close() error { return s.c.Close() }
