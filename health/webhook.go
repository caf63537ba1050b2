package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gslbd/gslbd/idgen"
	"github.com/prometheus/client_golang/prometheus"
)

// WebhookConfig says where health events are POSTed and how hard the
// notifier tries. Zero values take the defaults, so WebhookConfig{URLs: u}
// is a working configuration.
type WebhookConfig struct {
	// URLs receive every event. Userinfo is sent as basic auth and the
	// query is kept, but neither ever reaches a log line or a metric label.
	URLs []string
	// Timeout bounds one delivery attempt: connect, TLS, request and
	// response (default 5s).
	Timeout time.Duration
	// QueueSize bounds each URL's queue of events awaiting delivery
	// (default 1000). A full queue drops new events rather than block the
	// probers.
	QueueSize int
	// MaxRetries is the number of attempts after the first (default 5). As
	// in go-redis, 0 means the default and -1 means no retries.
	MaxRetries int
	// Backoff is the first retry delay, doubled after each failed retry,
	// jittered, and capped at one minute (default 1s).
	Backoff time.Duration
	// Headers are added to every request, e.g. Authorization. Their
	// values are never logged. Content-Type, User-Agent and Idempotency-Key
	// are the notifier's own and override entries here.
	Headers map[string]string
}

const (
	defaultWebhookTimeout    = 5 * time.Second
	defaultWebhookQueueSize  = 1000
	defaultWebhookMaxRetries = 5
	defaultWebhookBackoff    = time.Second

	// webhookMaxDelay caps both the backoff and Retry-After: a receiver
	// asking for an hour would otherwise stall that URL's queue for an
	// hour, and every later event would be dropped.
	webhookMaxDelay = time.Minute
	// webhookDropLogEvery rate-limits the queue-full warning: a dead
	// receiver during a flapping outage can drop thousands of events a
	// minute, and one line with a count says as much as thousands of lines.
	webhookDropLogEvery = time.Minute
	// webhookMaxResponse is how much of a response body is read so the
	// connection can be reused; receivers have nothing to tell us in it.
	webhookMaxResponse = 64 << 10
)

// Validate reports every problem in c at once. Messages name the URL by
// its index and its redacted form, never its credentials or header values.
func (c WebhookConfig) Validate() error {
	var errs []error
	seen := make(map[string]int, len(c.URLs))
	for i, raw := range c.URLs {
		u, err := parseWebhookURL(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("health: webhook urls[%d]: %w", i, err))
			continue
		}
		if j, dup := seen[raw]; dup {
			errs = append(errs, fmt.Errorf("health: webhook urls[%d] %q: duplicate of urls[%d]", i, redactURL(u), j))
			continue
		}
		seen[raw] = i
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("health: webhook timeout: %s must not be negative", c.Timeout))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("health: webhook queue size: %d must not be negative", c.QueueSize))
	}
	if c.MaxRetries < -1 {
		errs = append(errs, fmt.Errorf("health: webhook max retries: %d must be -1 (no retries) or more", c.MaxRetries))
	}
	if c.Backoff < 0 {
		errs = append(errs, fmt.Errorf("health: webhook backoff: %s must not be negative", c.Backoff))
	}
	for name, value := range c.Headers {
		if !validHeaderName(name) {
			errs = append(errs, fmt.Errorf("health: webhook header %q: not a valid header name", name))
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			// The value may be a secret, so only its name is reported.
			errs = append(errs, fmt.Errorf("health: webhook header %q: value contains a line break or NUL", name))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields so the rest of the notifier never has to
// ask whether a setting was given.
func (c WebhookConfig) withDefaults() WebhookConfig {
	if c.Timeout <= 0 {
		c.Timeout = defaultWebhookTimeout
	}
	if c.QueueSize <= 0 {
		c.QueueSize = defaultWebhookQueueSize
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = defaultWebhookMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.Backoff <= 0 {
		c.Backoff = defaultWebhookBackoff
	}
	return c
}

// Notifier POSTs health events to webhooks. Notify never blocks the
// prober that calls it: each URL has its own bounded queue and its own
// delivery goroutine, started by Run, so a slow or dead receiver costs
// only its own queue.
//
// Each URL's queue is FIFO and delivered one event at a time, so a
// receiver sees an endpoint go down before it sees it come back up. The
// price is head-of-line blocking: while an event is being retried (worst
// case MaxRetries attempts of Timeout each plus up to a minute between
// them), later events for that URL wait, and once its queue is full they
// are dropped. Other URLs are unaffected.
type Notifier struct {
	cfg     WebhookConfig
	headers http.Header
	client  *http.Client
	log     *slog.Logger
	targets []*webhookTarget
	running atomic.Bool
	// dropSignal wakes the drop reporter; it has room for one wake-up so
	// Notify never waits on it.
	dropSignal chan struct{}

	// Test hooks: the delay cap, the drop log interval, and how a retry
	// waits, so tests can check a one-minute Retry-After without taking a
	// minute.
	maxDelay     time.Duration
	dropLogEvery time.Duration
	wait         func(ctx context.Context, d time.Duration) error
}

// webhookTarget is one URL: its queue and its metric children, looked up
// once so delivery does no label hashing.
type webhookTarget struct {
	url   string // as configured, credentials and all: for requests only
	label string // redacted: for logs and metrics
	queue chan Event

	queued                    prometheus.Gauge
	success, failure, dropped prometheus.Counter
	duration                  prometheus.Observer
	// unlogged counts queue-full drops not yet reported in the log.
	unlogged atomic.Int64
}

// NewNotifier registers the webhook series with reg and prepares one
// queue per URL. Delivery starts with Run. URLs that Validate would reject
// are logged and skipped rather than failing the daemon, since health
// checking is worth more than its notifications; callers should run
// Validate with the rest of the configuration first. Several notifiers
// may share a registry (say, one per configured webhook with its own
// timeout and headers): they share the series, labelled by URL.
func NewNotifier(cfg WebhookConfig, reg prometheus.Registerer, log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "webhook")
	cfg = cfg.withDefaults()
	// Copy the headers so a caller changing its map later cannot race
	// with the delivery goroutines reading ours.
	headers := make(http.Header, len(cfg.Headers))
	for k, v := range cfg.Headers {
		headers.Set(k, v)
	}

	deliveries := registerWebhookMetric(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gslb", Subsystem: "webhook", Name: "deliveries_total",
		Help: "Health events by webhook URL and result: success (2xx), failure (refused or retries exhausted) or dropped (queue full, or still queued at shutdown).",
	}, []string{"url", "result"}))
	queueLen := registerWebhookMetric(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gslb", Subsystem: "webhook", Name: "queue_length",
		Help: "Health events waiting for delivery by webhook URL, not counting the one being delivered.",
	}, []string{"url"}))
	duration := registerWebhookMetric(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "gslb", Subsystem: "webhook", Name: "delivery_duration_seconds",
		Help:    "Time taken by each webhook POST attempt, including failed ones, by URL.",
		Buckets: prometheus.DefBuckets,
	}, []string{"url"}))

	n := &Notifier{
		cfg:     cfg,
		headers: headers,
		client:  newWebhookClient(cfg.Timeout),
		log:     log,
		// One slot is enough: the reporter looks at every URL's count
		// each time it wakes.
		dropSignal:   make(chan struct{}, 1),
		maxDelay:     webhookMaxDelay,
		dropLogEvery: webhookDropLogEvery,
		wait:         sleepCtx,
	}
	seen := make(map[string]bool, len(cfg.URLs))
	for i, raw := range cfg.URLs {
		u, err := parseWebhookURL(raw)
		if err != nil {
			log.Error("webhook url skipped", "index", i, "err", err)
			continue
		}
		label := redactURL(u)
		if seen[raw] {
			// Delivering twice to one receiver is never what was meant.
			log.Warn("webhook url skipped: duplicate", "index", i, "url", label)
			continue
		}
		seen[raw] = true
		// URLs differing only in credentials or query share a label and
		// therefore their series; the sums stay correct.
		n.targets = append(n.targets, &webhookTarget{
			url:      raw,
			label:    label,
			queue:    make(chan Event, cfg.QueueSize),
			queued:   queueLen.WithLabelValues(label),
			success:  deliveries.WithLabelValues(label, "success"),
			failure:  deliveries.WithLabelValues(label, "failure"),
			dropped:  deliveries.WithLabelValues(label, "dropped"),
			duration: duration.WithLabelValues(label),
		})
	}
	return n
}

// registerWebhookMetric registers c with reg, or returns the collector a
// previous notifier registered under the same name, so notifiers can
// share a registry. Any other registration error is a programming error
// in the metric definitions and panics, as promauto would.
func registerWebhookMetric[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// newWebhookClient builds the one client every URL shares. Every phase
// has a timeout because the default client has none, and a receiver that
// accepts a connection and never answers would otherwise hold its queue
// forever. Redirects are not followed: a webhook that moved is a
// configuration error to fix, and following it would send credentials
// and events to wherever the receiver points.
func newWebhookClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   timeout,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			ExpectContinueTimeout: time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          100,
		},
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Notify queues e for every URL. It never blocks: when a URL's queue is
// full the event is dropped for that URL and counted, because a stalled
// prober would hurt more than a missed notification.
func (n *Notifier) Notify(e Event) {
	for _, t := range n.targets {
		// Count before sending: the delivery goroutine may take the event
		// and decrement before this goroutine runs again, and the gauge
		// must never go below zero.
		t.queued.Inc()
		select {
		case t.queue <- e:
		default:
			t.queued.Dec()
			t.dropped.Inc()
			t.unlogged.Add(1)
			select {
			case n.dropSignal <- struct{}{}:
			default:
			}
		}
	}
}

// Run delivers queued events until ctx is done, with one goroutine per URL
// so a slow receiver holds up only itself, and returns once they have all
// stopped. Events still queued or being retried when ctx ends are counted
// as dropped: the daemon is stopping and will not deliver them. A second
// concurrent Run would break per-URL ordering, so it logs and returns.
func (n *Notifier) Run(ctx context.Context) {
	if !n.running.CompareAndSwap(false, true) {
		n.log.Error("webhook notifier already running")
		return
	}
	defer n.running.Store(false)
	var wg sync.WaitGroup
	for _, t := range n.targets {
		wg.Go(func() { n.deliverLoop(ctx, t) })
	}
	wg.Go(func() { n.reportDrops(ctx) })
	wg.Wait()
}

// deliverLoop drains one URL's queue in order.
func (n *Notifier) deliverLoop(ctx context.Context, t *webhookTarget) {
	for {
		select {
		case <-ctx.Done():
			n.abandon(t, 0)
			return
		case e := <-t.queue:
			t.queued.Dec()
			if !n.deliver(ctx, t, e) {
				n.abandon(t, 1)
				return
			}
		}
	}
}

// abandon counts the events left undelivered at shutdown, inFlight being
// the one interrupted mid-delivery, and logs them once.
func (n *Notifier) abandon(t *webhookTarget, inFlight int) {
	count := inFlight
	// Bounded by the queue length now, so a Notify racing with shutdown
	// cannot keep this loop going.
	for range len(t.queue) {
		select {
		case <-t.queue:
			t.queued.Dec()
			count++
		default:
		}
	}
	if count == 0 {
		return
	}
	t.dropped.Add(float64(count))
	n.log.Warn("webhook events not delivered: shutting down", "url", t.label, "dropped", count)
}

// deliver POSTs e until it is delivered, refused or out of retries. It
// returns false only when ctx ended first, leaving e undelivered.
func (n *Notifier) deliver(ctx context.Context, t *webhookTarget, e Event) bool {
	body, err := json.Marshal(e)
	if err != nil {
		t.failure.Inc()
		n.log.Error("webhook event not encodable", "url", t.label, "event", e.ID, "err", err)
		return true
	}
	for attempt := 0; ; attempt++ {
		retry, retryAfter, err := n.post(ctx, t, e.ID, body)
		if err == nil {
			t.success.Inc()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !retry || attempt >= n.cfg.MaxRetries {
			t.failure.Inc()
			n.log.Warn("webhook delivery failed", "url", t.label, "event", e.ID, "attempts", attempt+1, "err", err)
			return true
		}
		// Retry-After is a floor, not a replacement: our own backoff
		// still grows if the receiver keeps asking for one second.
		d := min(max(n.backoff(attempt), retryAfter), n.maxDelay)
		n.log.Debug("webhook delivery retrying", "url", t.label, "event", e.ID, "attempt", attempt+1, "delay", d, "err", err)
		if n.wait(ctx, d) != nil {
			return false
		}
	}
}

// post makes one attempt. retry says whether another attempt could
// succeed: 5xx, 429 and network errors, but not a receiver that refused
// the event. retryAfter is what the receiver asked for, zero if nothing.
func (n *Notifier) post(ctx context.Context, t *webhookTarget, id idgen.ID, body []byte) (retry bool, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("health: webhook request: %w", stripURL(err))
	}
	for k, v := range n.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "gslbd")
	// The same key on every attempt lets a receiver drop the duplicate
	// when a response was lost after the event was accepted.
	req.Header.Set("Idempotency-Key", id.String())

	start := time.Now()
	resp, err := n.client.Do(req)
	if err != nil {
		t.duration.Observe(time.Since(start).Seconds())
		// Client errors quote the URL, query and username included.
		return true, 0, fmt.Errorf("health: webhook post: %w", stripURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookMaxResponse))
	_ = resp.Body.Close()
	t.duration.Observe(time.Since(start).Seconds())

	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		return false, 0, nil
	case code >= 500 || code == http.StatusTooManyRequests:
		return true, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			fmt.Errorf("health: webhook receiver answered %d %s", code, http.StatusText(code))
	default:
		return false, 0, fmt.Errorf("health: webhook receiver refused the event: %d %s", code, http.StatusText(code))
	}
}

// backoff is the delay before retry attempt+1: Backoff doubled per
// earlier retry, capped, with equal jitter. Half the delay is fixed so it
// still grows; half is random so the gslbd instances that saw the same
// outage do not all retry against a recovering receiver at the same
// instant.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.cfg.Backoff
	// Doubling stops at the cap, so a large attempt cannot overflow.
	for i := 0; i < attempt && d < n.maxDelay; i++ {
		d *= 2
	}
	d = min(d, n.maxDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// parseRetryAfter reads a Retry-After header in either form RFC 9110
// allows, seconds or an HTTP date, returning zero for anything else.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		// Far beyond any cap, and small enough not to overflow.
		s = min(s, 1<<30)
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// reportDrops logs queue-full drops at most once per dropLogEvery, with
// the count since the last report. The first drop after a quiet spell is
// logged at once, so an operator watching the log sees the problem start;
// what follows within the interval is summed into the next line. Logging
// happens here rather than in Notify so a slow log sink never stalls a
// prober.
func (n *Notifier) reportDrops(ctx context.Context) {
	var last time.Time
	var later <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			n.logDrops()
			return
		case <-n.dropSignal:
		case <-later:
			later = nil
		}
		if wait := n.dropLogEvery - time.Since(last); wait > 0 {
			if later == nil {
				later = time.After(wait)
			}
			continue
		}
		if n.logDrops() {
			last = time.Now()
		}
	}
}

// logDrops logs each URL's unreported drops and says whether it logged.
func (n *Notifier) logDrops() bool {
	logged := false
	for _, t := range n.targets {
		if c := t.unlogged.Swap(0); c > 0 {
			n.log.Warn("webhook events dropped: queue full", "url", t.label, "dropped", c, "queue_size", n.cfg.QueueSize)
			logged = true
		}
	}
	return logged
}

// sleepCtx waits d or until ctx is done, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseWebhookURL accepts absolute http and https URLs with a host. Its
// errors never quote the URL, which may carry credentials.
func parseWebhookURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid url: %w", stripURL(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", redactURL(u))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", redactURL(u))
	}
	return u, nil
}

// redactURL drops userinfo, query and fragment: what is left names the
// receiver without its secrets and is fixed by configuration, so it is
// safe both in logs and as a bounded metric label.
func redactURL(u *url.URL) string {
	r := *u
	r.User = nil
	r.RawQuery = ""
	r.ForceQuery = false
	r.Fragment = ""
	r.RawFragment = ""
	return r.String()
}

// stripURL unwraps a *url.Error, whose message quotes the whole URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
