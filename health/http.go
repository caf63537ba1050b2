package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// httpProber GETs (or the configured method) a path and judges the
// status, optionally the body, and reads the load and latency an
// endpoint reports in a JSON body.
type httpProber struct {
	c      *Check
	scheme string
	client *http.Client
}

func newHTTPProber(c *Check) (*httpProber, error) {
	tr := &http.Transport{
		// The deadline comes from the probe's context; these bound the
		// pieces of a connection in case a server dribbles.
		DialContext:           (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   c.Timeout,
		ResponseHeaderTimeout: c.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       2 * c.Interval,
		DisableCompression:    true,
		Proxy:                 nil, // health is judged on the direct path, never via a proxy
	}
	if c.Type == "https" {
		cfg, err := c.TLS.build()
		if err != nil {
			return nil, fmt.Errorf("health: check %s: %w", c.Name, err)
		}
		tr.TLSClientConfig = cfg
	}
	return &httpProber{c: c, scheme: c.Type, client: &http.Client{
		Transport: tr,
		// A redirect is an answer about the endpoint, not a reason to go
		// and probe another one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// report is the JSON a health endpoint may return, as the origin's
// /health does: its datacenter's load and its own service latency.
type report struct {
	Load    *float64 `json:"load"`
	Latency *float64 `json:"latency"`
}

func (p *httpProber) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	url := p.scheme + "://" + target.String() + p.c.Path
	req, err := http.NewRequestWithContext(ctx, p.c.Method, url, nil)
	if err != nil {
		return failed(start, "building request: %v", err)
	}
	if p.c.Host != "" {
		req.Host = p.c.Host
	}
	req.Header.Set("User-Agent", "gslbd-health")
	resp, err := p.client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			return failed(start, "timed out after %s", time.Since(start).Round(time.Millisecond))
		}
		return failed(start, "%v", unwrapURLError(err))
	}
	defer resp.Body.Close()
	// Read at most the limit: a huge or endless body must not hold the
	// prober, and what a health check needs is at the start.
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.c.BodyLimit+1))
	if err != nil {
		return failed(start, "reading body: %v", err)
	}
	truncated := int64(len(body)) > p.c.BodyLimit
	if truncated {
		body = body[:p.c.BodyLimit]
	}
	if !slices.Contains(p.c.ExpectStatus, resp.StatusCode) {
		return failed(start, "status %d, want %s", resp.StatusCode, statusList(p.c.ExpectStatus))
	}
	if p.c.BodyContains != "" && !bytes.Contains(body, []byte(p.c.BodyContains)) {
		if truncated {
			return failed(start, "body has no %q in its first %d bytes", p.c.BodyContains, p.c.BodyLimit)
		}
		return failed(start, "body has no %q", p.c.BodyContains)
	}
	r := succeeded(start)
	if !truncated {
		r.Load, r.LatencyMS = parseReport(body)
	}
	return r
}

// parseReport reads the load and latency a health body reports; either
// is NaN, as in a result that reported nothing, when the body is not a
// JSON object, lacks it, or holds a negative or infinite value: an
// endpoint's bytes are untrusted, and a bad figure must not skew scoring
// any more than a missing one does.
func parseReport(body []byte) (load, latencyMS float64) {
	load, latencyMS = math.NaN(), math.NaN()
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return load, latencyMS
	}
	var rep report
	if json.Unmarshal(t, &rep) != nil {
		return load, latencyMS
	}
	if rep.Load != nil && *rep.Load >= 0 && !math.IsInf(*rep.Load, 0) {
		load = *rep.Load
	}
	if rep.Latency != nil && *rep.Latency >= 0 && !math.IsInf(*rep.Latency, 0) {
		latencyMS = *rep.Latency
	}
	return load, latencyMS
}

func statusList(codes []int) string {
	if len(codes) == 1 {
		return strconv.Itoa(codes[0])
	}
	return fmt.Sprint(codes)
}

// unwrapURLError drops net/http's "Get \"url\": " prefix: the status
// already names the endpoint.
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
