package health

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gslbd/gslbd/idgen"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// webhookDeadline bounds every wait in these tests. It is a ceiling for a
// loaded CI machine, not an expectation: the tests finish in milliseconds.
const webhookDeadline = 10 * time.Second

// webhookLog collects the notifier's JSON log lines so tests can read
// them back and check what was (and was not) logged.
type webhookLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *webhookLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *webhookLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// records returns the log lines whose message is msg.
func (l *webhookLog) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func newWebhookTest(t *testing.T, cfg WebhookConfig) (*Notifier, *prometheus.Registry, *webhookLog) {
	t.Helper()
	reg := prometheus.NewRegistry()
	lg := &webhookLog{}
	log := slog.New(slog.NewJSONHandler(lg, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewNotifier(cfg, reg, log), reg, lg
}

// runWebhook starts n.Run and returns a stop function that cancels it and
// fails the test if Run does not return. Stop also runs at cleanup, before
// any httptest server registered earlier is closed, so in-flight requests
// are cancelled rather than waited for.
func runWebhook(t *testing.T, n *Notifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.Run(ctx)
		close(done)
	}()
	stop = func() {
		t.Helper()
		cancel()
		select {
		case <-done:
		case <-time.After(webhookDeadline):
			t.Fatal("Run did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitForWebhook polls cond until it holds or the deadline passes.
func waitForWebhook(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(webhookDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv takes one value from c or fails the test at the deadline.
func recv[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(webhookDeadline):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func testWebhookEvent(id int64) Event {
	return Event{
		ID:         idgen.ID(id),
		Time:       time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Kind:       "endpoint",
		Datacenter: "fra1",
		Endpoint:   "192.0.2.10:443",
		From:       "up",
		To:         "down",
		Reason:     "connection refused",
		Instance:   "gslbd-a",
	}
}

func count(c prometheus.Collector) int { return int(testutil.ToFloat64(c)) }

// blockingReceiver answers only once release is closed (or the request is
// cancelled), reporting each request on entered.
func blockingReceiver(t *testing.T) (srv *httptest.Server, entered <-chan struct{}, release func()) {
	t.Helper()
	in := make(chan struct{}, 100)
	rel := make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Until the body is read the server does not watch the
		// connection, and r.Context would miss the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		in <- struct{}{}
		select {
		case <-rel:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	return srv, in, func() { once.Do(func() { close(rel) }) }
}

func TestWebhookDelivery(t *testing.T) {
	type request struct {
		method, path, query string
		header              http.Header
		body                []byte
	}
	got := make(chan request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	n, reg, _ := newWebhookTest(t, WebhookConfig{
		URLs: []string{srv.URL + "/hook?token=tok"},
		Headers: map[string]string{
			"Authorization": "Bearer s3cret",
			"x-gslb-test":   "yes",
			// The notifier's own headers win over configured ones.
			"User-Agent": "curl",
		},
	})
	runWebhook(t, n)
	want := testWebhookEvent(4242)
	n.Notify(want)

	r := recv(t, "the webhook request", got)
	if r.method != http.MethodPost || r.path != "/hook" || r.query != "token=tok" {
		t.Errorf("got %s %s?%s, want POST /hook?token=tok", r.method, r.path, r.query)
	}
	for name, value := range map[string]string{
		"Content-Type":    "application/json",
		"User-Agent":      "gslbd",
		"Idempotency-Key": "4242",
		"Authorization":   "Bearer s3cret",
		"X-Gslb-Test":     "yes",
	} {
		if v := r.header.Get(name); v != value {
			t.Errorf("header %s: got %q, want %q", name, v, value)
		}
	}
	var ev Event
	if err := json.Unmarshal(r.body, &ev); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if ev != want {
		t.Errorf("got event %+v, want %+v", ev, want)
	}
	// Field names are the struct tags, and the ID is a string so
	// JavaScript receivers do not round it.
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "time", "kind", "datacenter", "endpoint", "from", "to", "reason", "instance"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("body %s: no %q field", r.body, key)
		}
	}
	if raw["id"] != "4242" {
		t.Errorf("id: got %#v, want \"4242\"", raw["id"])
	}

	t0 := n.targets[0]
	waitForWebhook(t, "the success count", func() bool { return count(t0.success) == 1 })
	label := srv.URL + "/hook"
	expected := `
# HELP gslb_webhook_deliveries_total Health events by webhook URL and result: success (2xx), failure (refused or retries exhausted) or dropped (queue full, or still queued at shutdown).
# TYPE gslb_webhook_deliveries_total counter
gslb_webhook_deliveries_total{result="dropped",url="` + label + `"} 0
gslb_webhook_deliveries_total{result="failure",url="` + label + `"} 0
gslb_webhook_deliveries_total{result="success",url="` + label + `"} 1
# HELP gslb_webhook_queue_length Health events waiting for delivery by webhook URL, not counting the one being delivered.
# TYPE gslb_webhook_queue_length gauge
gslb_webhook_queue_length{url="` + label + `"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"gslb_webhook_deliveries_total", "gslb_webhook_queue_length"); err != nil {
		t.Error(err)
	}
	if c := testutil.CollectAndCount(reg, "gslb_webhook_delivery_duration_seconds"); c != 1 {
		t.Errorf("duration series: got %d, want 1", c)
	}
}

// dropConn is a status in a receiver script meaning "close the
// connection without answering", a network error to the notifier.
const dropConn = -1

func TestWebhookRetry(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int // one per attempt; the last repeats
		maxRetries   int
		wantAttempts int
		wantSuccess  bool
	}{
		{"500 then 200", []int{500, 200}, 0, 2, true},
		{"503 twice then 200", []int{503, 503, 200}, 0, 3, true},
		{"429 then 200", []int{429, 200}, 0, 2, true},
		{"connection dropped then 200", []int{dropConn, 200}, 0, 2, true},
		{"400 not retried", []int{400}, 0, 1, false},
		{"404 not retried", []int{404}, 0, 1, false},
		{"redirect not followed", []int{302}, 0, 1, false},
		{"retries exhausted", []int{500}, 2, 3, false},
		{"no retries", []int{500}, -1, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var keys []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				keys = append(keys, r.Method+" "+r.Header.Get("Idempotency-Key"))
				status := tc.statuses[min(len(keys), len(tc.statuses))-1]
				mu.Unlock()
				switch status {
				case dropConn:
					conn, _, err := http.NewResponseController(w).Hijack()
					if err != nil {
						t.Errorf("hijack: %v", err)
						return
					}
					_ = conn.Close()
				case http.StatusFound:
					// A followed redirect would show up as a GET.
					http.Redirect(w, r, "/elsewhere", status)
				default:
					w.WriteHeader(status)
				}
			}))
			t.Cleanup(srv.Close)

			n, _, _ := newWebhookTest(t, WebhookConfig{
				URLs:       []string{srv.URL},
				MaxRetries: tc.maxRetries,
				Backoff:    time.Millisecond,
			})
			runWebhook(t, n)
			n.Notify(testWebhookEvent(7))

			t0 := n.targets[0]
			waitForWebhook(t, "an outcome", func() bool { return count(t0.success)+count(t0.failure) > 0 })
			// The outcome is counted after the last attempt, so the
			// attempts are final now.
			mu.Lock()
			defer mu.Unlock()
			if len(keys) != tc.wantAttempts {
				t.Errorf("got %d attempts %q, want %d", len(keys), keys, tc.wantAttempts)
			}
			for i, k := range keys {
				if k != "POST 7" {
					t.Errorf("attempt %d: got %q, want \"POST 7\": retries must repeat the idempotency key", i+1, k)
				}
			}
			success, failure := count(t0.success), count(t0.failure)
			if tc.wantSuccess && (success != 1 || failure != 0) || !tc.wantSuccess && (success != 0 || failure != 1) {
				t.Errorf("got success %d, failure %d, want success %v", success, failure, tc.wantSuccess)
			}
		})
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	const backoff = 10 * time.Millisecond
	tests := []struct {
		name       string
		status     int
		retryAfter string
		min, max   time.Duration
	}{
		{"seconds", 503, "2", 2 * time.Second, 2 * time.Second},
		{"seconds on 429", 429, "3", 3 * time.Second, 3 * time.Second},
		{"capped at a minute", 503, "3600", time.Minute, time.Minute},
		{"http date", 503, time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat), 28 * time.Second, 30 * time.Second},
		{"absent", 503, "", backoff / 2, backoff},
		{"unparseable", 503, "soon", backoff / 2, backoff},
		{"zero keeps the backoff", 503, "0", backoff / 2, backoff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			attempts := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				attempts++
				first := attempts == 1
				mu.Unlock()
				if first {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(tc.status)
				}
			}))
			t.Cleanup(srv.Close)

			n, _, _ := newWebhookTest(t, WebhookConfig{URLs: []string{srv.URL}, Backoff: backoff})
			// Record the delays instead of waiting them out, so a
			// one-minute Retry-After costs nothing.
			var delays []time.Duration
			n.wait = func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				defer mu.Unlock()
				delays = append(delays, d)
				return nil
			}
			runWebhook(t, n)
			n.Notify(testWebhookEvent(1))

			t0 := n.targets[0]
			waitForWebhook(t, "delivery", func() bool { return count(t0.success) == 1 })
			mu.Lock()
			defer mu.Unlock()
			if len(delays) != 1 {
				t.Fatalf("got delays %v, want one", delays)
			}
			if d := delays[0]; d < tc.min || d > tc.max {
				t.Errorf("got delay %s, want %s to %s", d, tc.min, tc.max)
			}
		})
	}
}

func TestWebhookParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"-5", 0},
		{"1.5", 0},
		{"99999999999999999", (1 << 30) * time.Second}, // clamped, not overflowed
		{"Sun, 01 Mar 2026 12:00:45 GMT", 45 * time.Second},
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0}, // in the past
		{"tomorrow", 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q): got %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestWebhookBackoff(t *testing.T) {
	n := NewNotifier(WebhookConfig{Backoff: 100 * time.Millisecond}, nil, nil)
	for attempt := range 12 {
		want := min(100*time.Millisecond<<attempt, time.Minute)
		for range 100 {
			if d := n.backoff(attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: got %s, want %s to %s", attempt, d, want/2, want)
			}
		}
	}
	// Far past the cap the doubling must stop, not overflow.
	if d := n.backoff(1000); d < 30*time.Second || d > time.Minute {
		t.Errorf("attempt 1000: got %s, want 30s to 1m", d)
	}
}

func TestWebhookQueueFullDrops(t *testing.T) {
	srv, entered, release := blockingReceiver(t)
	n, _, lg := newWebhookTest(t, WebhookConfig{
		URLs:      []string{srv.URL},
		QueueSize: 2,
		Timeout:   time.Minute, // the receiver is stuck on purpose
	})
	stop := runWebhook(t, n)
	t0 := n.targets[0]

	n.Notify(testWebhookEvent(1))
	recv(t, "the first request", entered)

	// The first event is in flight and the receiver holds it: two more
	// fill the queue and the other eight must be dropped, with Notify
	// returning every time.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			n.Notify(testWebhookEvent(int64(i + 2)))
		}
	}()
	recv(t, "Notify to return while the queue is full", done)
	if got := count(t0.dropped); got != 8 {
		t.Errorf("dropped: got %d, want 8", got)
	}
	if got := count(t0.queued); got != 2 {
		t.Errorf("queue length: got %d, want 2", got)
	}
	// The first drop is logged at once; the rest wait for the minute.
	waitForWebhook(t, "the drop to be logged", func() bool {
		return len(lg.records(t, "webhook events dropped: queue full")) > 0
	})

	release()
	waitForWebhook(t, "the queued events", func() bool { return count(t0.success) == 3 })
	if got := count(t0.queued); got != 0 {
		t.Errorf("queue length after delivery: got %d, want 0", got)
	}
	if got := count(t0.failure); got != 0 {
		t.Errorf("failure: got %d, want 0", got)
	}

	// Shutdown reports what the rate limit held back, so the logged
	// counts add up to the metric.
	stop()
	recs := lg.records(t, "webhook events dropped: queue full")
	if len(recs) > 2 {
		t.Errorf("got %d drop log lines within a minute, want at most 2", len(recs))
	}
	sum := 0
	for _, r := range recs {
		sum += int(r["dropped"].(float64))
	}
	if sum != 8 {
		t.Errorf("logged drops add up to %d, want 8", sum)
	}
}

func TestWebhookSlowURLDoesNotDelayOther(t *testing.T) {
	slow, entered, release := blockingReceiver(t)
	ids := make(chan string, 10)
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids <- r.Header.Get("Idempotency-Key")
	}))
	t.Cleanup(fast.Close)

	n, _, _ := newWebhookTest(t, WebhookConfig{
		URLs:    []string{slow.URL, fast.URL},
		Timeout: time.Minute,
	})
	runWebhook(t, n)
	for i := range 3 {
		n.Notify(testWebhookEvent(int64(i + 1)))
	}

	for _, want := range []string{"1", "2", "3"} {
		if got := recv(t, "the fast receiver", ids); got != want {
			t.Errorf("fast receiver: got event %s, want %s", got, want)
		}
	}
	recv(t, "the slow receiver", entered)
	slowT, fastT := n.targets[0], n.targets[1]
	// The fast receiver has answered, but the count may trail the answer.
	waitForWebhook(t, "the fast successes", func() bool { return count(fastT.success) == 3 })
	if got := count(slowT.success); got != 0 {
		t.Errorf("slow receiver: got %d successes while it was stuck, want 0", got)
	}
	if got := count(slowT.queued); got != 2 {
		t.Errorf("slow queue length: got %d, want 2", got)
	}

	release()
	waitForWebhook(t, "the slow receiver to catch up", func() bool { return count(slowT.success) == 3 })
}

func TestWebhookOrder(t *testing.T) {
	var mu sync.Mutex
	var got []string
	failedOnce := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("Idempotency-Key")
		if id == "1" && !failedOnce {
			failedOnce = true
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got = append(got, id)
	}))
	t.Cleanup(srv.Close)

	n, _, _ := newWebhookTest(t, WebhookConfig{URLs: []string{srv.URL}, Backoff: time.Millisecond})
	// Queue everything before delivery starts, so the later events are
	// waiting while the first is retried.
	for i := range 5 {
		n.Notify(testWebhookEvent(int64(i + 1)))
	}
	runWebhook(t, n)
	waitForWebhook(t, "five deliveries", func() bool { return count(n.targets[0].success) == 5 })

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"1", "2", "3", "4", "5"}; !slices.Equal(got, want) {
		t.Errorf("got order %v, want %v", got, want)
	}
}

func TestWebhookRunReturnsOnCancel(t *testing.T) {
	tests := []struct {
		name string
		// receiver returns the server and a channel that gets a value
		// once the notifier is busy with the first event.
		receiver func(t *testing.T) (*httptest.Server, <-chan struct{})
	}{
		{"request in flight", func(t *testing.T) (*httptest.Server, <-chan struct{}) {
			srv, entered, _ := blockingReceiver(t)
			return srv, entered
		}},
		{"waiting to retry", func(t *testing.T) (*httptest.Server, <-chan struct{}) {
			failed := make(chan struct{}, 100)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				failed <- struct{}{}
			}))
			t.Cleanup(srv.Close)
			return srv, failed
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, busy := tc.receiver(t)
			n, _, lg := newWebhookTest(t, WebhookConfig{
				URLs:    []string{srv.URL},
				Timeout: time.Minute,
				Backoff: time.Hour, // capped at a minute: Run must not wait it out
			})
			stop := runWebhook(t, n)
			for i := range 4 {
				n.Notify(testWebhookEvent(int64(i + 1)))
			}
			recv(t, "the first attempt", busy)
			stop() // fails the test if Run does not return

			t0 := n.targets[0]
			if got := count(t0.dropped); got != 4 {
				t.Errorf("dropped: got %d, want 4 (one in flight, three queued)", got)
			}
			if s, f := count(t0.success), count(t0.failure); s != 0 || f != 0 {
				t.Errorf("got success %d, failure %d, want 0 and 0", s, f)
			}
			if got := count(t0.queued); got != 0 {
				t.Errorf("queue length: got %d, want 0", got)
			}
			recs := lg.records(t, "webhook events not delivered: shutting down")
			if len(recs) != 1 || recs[0]["dropped"] != 4.0 {
				t.Errorf("got shutdown log %v, want one line with dropped=4", recs)
			}
		})
	}
}

func TestWebhookRunTwice(t *testing.T) {
	srv, _, _ := blockingReceiver(t)
	n, _, lg := newWebhookTest(t, WebhookConfig{URLs: []string{srv.URL}})
	runWebhook(t, n)
	waitForWebhook(t, "Run to start", n.running.Load)

	// A second Run must not start a second goroutine per URL, which
	// would deliver out of order; it returns at once instead.
	done := make(chan struct{})
	go func() {
		n.Run(context.Background())
		close(done)
	}()
	recv(t, "the second Run to return", done)
	if len(lg.records(t, "webhook notifier already running")) != 1 {
		t.Errorf("second Run was not logged")
	}
}

func TestWebhookNoSecretsLogged(t *testing.T) {
	basicAuth := make(chan string, 10)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		basicAuth <- user + ":" + pass
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(refusing.Close)
	// A port nobody listens on, for connection errors, which quote the
	// URL unless the notifier strips it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	_ = ln.Close()

	refusingURL := strings.Replace(refusing.URL, "http://", "http://alice:secretpw1@", 1) + "/hook?token=secrettok1#secretfrag"
	closedURL := "http://bob:secretpw2@" + closedAddr + "/x?token=secrettok2"
	n, reg, lg := newWebhookTest(t, WebhookConfig{
		URLs:       []string{refusingURL, closedURL},
		Headers:    map[string]string{"X-Api-Key": "secrethdr"},
		QueueSize:  1,
		MaxRetries: 1,
		Backoff:    time.Millisecond,
	})
	// Three events into queues of one: two drops per URL, logged with
	// the URL.
	for i := range 3 {
		n.Notify(testWebhookEvent(int64(i + 1)))
	}
	stop := runWebhook(t, n)
	waitForWebhook(t, "both failures", func() bool {
		return count(n.targets[0].failure) == 1 && count(n.targets[1].failure) == 1
	})
	stop()

	if got := recv(t, "the refusing receiver", basicAuth); got != "alice:secretpw1" {
		t.Errorf("basic auth from userinfo: got %q, want alice:secretpw1", got)
	}
	logs := lg.String()
	if strings.Contains(logs, "secret") {
		t.Errorf("a credential reached the log:\n%s", logs)
	}
	redacted := []string{refusing.URL + "/hook", "http://" + closedAddr + "/x"}
	for _, want := range redacted {
		if !strings.Contains(logs, `"url":"`+want+`"`) {
			t.Errorf("log does not name %s:\n%s", want, logs)
		}
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "url" && !slices.Contains(labels, l.GetValue()) {
					labels = append(labels, l.GetValue())
				}
			}
		}
	}
	slices.Sort(labels)
	slices.Sort(redacted)
	if !slices.Equal(labels, redacted) {
		t.Errorf("url labels: got %q, want %q", labels, redacted)
	}
}

func TestWebhookValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  WebhookConfig
		want []string // substrings of the error; none means valid
	}{
		{"zero value", WebhookConfig{}, nil},
		{"full", WebhookConfig{
			URLs:       []string{"https://hooks.example/a?token=x", "http://user:pw@192.0.2.1:8080/b"},
			Timeout:    time.Second,
			QueueSize:  10,
			MaxRetries: -1,
			Backoff:    time.Millisecond,
			Headers:    map[string]string{"Authorization": "Bearer x"},
		}, nil},
		{"scheme", WebhookConfig{URLs: []string{"ftp://user:secretpw@example/x"}},
			[]string{`health: webhook urls[0]: "ftp://example/x": scheme must be http or https`}},
		{"relative", WebhookConfig{URLs: []string{"/hook"}},
			[]string{`health: webhook urls[0]: "/hook": scheme must be http or https`}},
		{"no host", WebhookConfig{URLs: []string{"https:///hook"}},
			[]string{`health: webhook urls[0]: "https:///hook": no host`}},
		{"unparseable", WebhookConfig{URLs: []string{"http://user:secretpw@host:port/"}},
			[]string{"health: webhook urls[0]: not a valid url: invalid port"}},
		{"duplicate", WebhookConfig{URLs: []string{"https://a.example/?k=secret1", "https://b.example/", "https://a.example/?k=secret1"}},
			[]string{`health: webhook urls[2] "https://a.example/": duplicate of urls[0]`}},
		{"negative numbers", WebhookConfig{Timeout: -time.Second, QueueSize: -1, MaxRetries: -2, Backoff: -time.Second},
			[]string{
				"health: webhook timeout: -1s must not be negative",
				"health: webhook queue size: -1 must not be negative",
				"health: webhook max retries: -2 must be -1 (no retries) or more",
				"health: webhook backoff: -1s must not be negative",
			}},
		{"header name", WebhookConfig{Headers: map[string]string{"Bad Header": "x"}},
			[]string{`health: webhook header "Bad Header": not a valid header name`}},
		{"header value", WebhookConfig{Headers: map[string]string{"Authorization": "secret\r\nX-Evil: 1"}},
			[]string{`health: webhook header "Authorization": value contains a line break or NUL`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error quotes a credential: %q", err)
			}
		})
	}
}

// An invalid URL that skipped validation costs only itself.
func TestWebhookInvalidURLSkipped(t *testing.T) {
	n, _, lg := newWebhookTest(t, WebhookConfig{URLs: []string{
		"ftp://user:secretpw@example/", "https://ok.example/", "https://ok.example/",
	}})
	if len(n.targets) != 1 || n.targets[0].label != "https://ok.example/" {
		t.Errorf("got %d targets, want only https://ok.example/", len(n.targets))
	}
	if logs := lg.String(); strings.Contains(logs, "secret") || !strings.Contains(logs, "webhook url skipped") {
		t.Errorf("got log %s, want the skips logged without the credential", logs)
	}
	// With no URLs at all, Notify and Run still behave.
	empty, _, _ := newWebhookTest(t, WebhookConfig{})
	empty.Notify(testWebhookEvent(1))
	runWebhook(t, empty)()
}

func TestWebhookRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://hooks.example/a/b", "https://hooks.example/a/b"},
		{"https://user:pw@hooks.example/a", "https://hooks.example/a"},
		{"https://token@hooks.example:8443/a", "https://hooks.example:8443/a"},
		{"https://hooks.example/a?token=x&b=c", "https://hooks.example/a"},
		{"https://hooks.example/a?", "https://hooks.example/a"},
		{"https://hooks.example/a#frag", "https://hooks.example/a"},
		{"http://[2001:db8::1]:9000/h", "http://[2001:db8::1]:9000/h"},
	}
	for _, tc := range tests {
		u, err := parseWebhookURL(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := redactURL(u); got != tc.want {
			t.Errorf("redactURL(%s): got %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestWebhookConcurrentNotify(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	n, _, _ := newWebhookTest(t, WebhookConfig{URLs: []string{srv.URL}, QueueSize: 16})
	runWebhook(t, n)

	const probers, each = 8, 50
	var wg sync.WaitGroup
	for p := range probers {
		wg.Go(func() {
			for i := range each {
				n.Notify(testWebhookEvent(int64(p*each + i + 1)))
			}
		})
	}
	wg.Wait()
	// Every event is either delivered or dropped, never lost or doubled.
	t0 := n.targets[0]
	waitForWebhook(t, "every event accounted for", func() bool {
		return count(t0.success)+count(t0.dropped) == probers*each && count(t0.queued) == 0
	})
	if got := count(t0.failure); got != 0 {
		t.Errorf("failure: got %d, want 0", got)
	}
}

func TestWebhookMetricsLint(t *testing.T) {
	n, reg, _ := newWebhookTest(t, WebhookConfig{URLs: []string{"https://hooks.example/"}})
	n.targets[0].duration.Observe(0.1) // a histogram shows only once observed
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// The daemon may build one notifier per configured webhook, each with its
// own timeout and headers, on one registry.
func TestWebhookNotifiersShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewNotifier(WebhookConfig{URLs: []string{"https://a.example/"}}, reg, nil)
	b := NewNotifier(WebhookConfig{URLs: []string{"https://b.example/"}}, reg, nil)
	a.Notify(testWebhookEvent(1))
	b.Notify(testWebhookEvent(2))
	b.Notify(testWebhookEvent(3))
	expected := `
# HELP gslb_webhook_queue_length Health events waiting for delivery by webhook URL, not counting the one being delivered.
# TYPE gslb_webhook_queue_length gauge
gslb_webhook_queue_length{url="https://a.example/"} 1
gslb_webhook_queue_length{url="https://b.example/"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "gslb_webhook_queue_length"); err != nil {
		t.Error(err)
	}
}
