package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/pflag"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/admin"
	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/session"
)

const ctlUsage = `Usage: gslbd ctl COMMAND [ARGS] [flags]

Talks to a running daemon over its HTTP API (docs/api.md).

Commands:
  status                                  every datacenter and endpoint: state, since, last probe, RTT, quality, override
  explain NAME CLIENT_IP [--type AAAA] [--no-ecs]
                                          how the daemon answers NAME for a client at CLIENT_IP, and why
  drain   DC [ENDPOINT] --reason TEXT     force a datacenter (or one of its endpoints) down
  undrain DC [ENDPOINT] --reason TEXT     force it up, whatever its probes say
  auto    DC [ENDPOINT]                   hand it back to its probes
  sessions get|delete --client IP --service NAME
                                          a sticky service's session for a client
  reload                                  reload the configuration and report the outcome
  drill --service NAME --fail DC --probe IP_OR_SUBNET [--probe ...] [--live]
                                          a failover drill: dry run, or live with --live
  drills                                  the drills run so far

Flags of every command:
  -c, --config FILE        take http.listen and http.token_file from this configuration
      --addr HOST:PORT     the daemon's HTTP address (default: from --config, else 127.0.0.1:9053)
      --token-file FILE    bearer token file (default: from --config)
  -o, --output FORMAT      text (default) or json: the API's JSON as it answered
      --timeout DURATION   how long to wait for the answer (default 30s)

Exit codes: 0 ok; 1 the daemon said no (its error is printed) or a drill failed;
2 usage; 3 the daemon could not be reached.
`

// ctlCommands are the ctl subcommands: their argument synopsis and what
// runs them.
var ctlCommands = map[string]struct {
	synopsis string
	run      func(c *ctlCmd, args []string) int
}{
	"status":   {"", ctlStatus},
	"explain":  {"NAME CLIENT_IP [--type AAAA] [--no-ecs]", ctlExplain},
	"drain":    {"DC [ENDPOINT] --reason TEXT", ctlOverride("down")},
	"undrain":  {"DC [ENDPOINT] --reason TEXT", ctlOverride("up")},
	"auto":     {"DC [ENDPOINT]", ctlOverride("auto")},
	"sessions": {"get|delete --client IP --service NAME", ctlSessions},
	"reload":   {"", ctlReload},
	"drill":    {"--service NAME --fail DC --probe IP_OR_SUBNET [--probe ...] [--live]", ctlDrill},
	"drills":   {"", ctlDrills},
}

// ctl talks to a running daemon over its HTTP listener.
func ctl(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, ctlUsage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, ctlUsage)
		return exitOK
	}
	cmd, ok := ctlCommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "gslbd ctl: unknown command %q\n\n%s", args[0], ctlUsage)
		return exitUsage
	}
	c := newCtlCmd(args[0], cmd.synopsis, stdout, stderr)
	return cmd.run(c, args[1:])
}

// ctlCmd is one ctl invocation: the flags every command shares, and the
// daemon it talks to.
type ctlCmd struct {
	name, synopsis string
	fs             *pflag.FlagSet
	stdout, stderr io.Writer

	file, addr, tokenFile, output string
	timeout                       time.Duration

	target, token string
}

func newCtlCmd(name, synopsis string, stdout, stderr io.Writer) *ctlCmd {
	c := &ctlCmd{name: name, synopsis: synopsis, stdout: stdout, stderr: stderr}
	c.fs = pflag.NewFlagSet("ctl "+name, pflag.ContinueOnError)
	c.fs.SetOutput(stderr)
	c.fs.SortFlags = false
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gslbd ctl %s [flags]\n\nFlags:\n%s", strings.TrimSpace(name+" "+synopsis), c.fs.FlagUsages())
	}
	return c
}

// parse adds the shared flags, parses args and checks the number of
// positional arguments; the command has added its own flags before.
func (c *ctlCmd) parse(args []string, minArgs, maxArgs int) (int, bool) {
	c.fs.StringVarP(&c.file, "config", "c", "", "take http.listen and http.token_file from this configuration")
	c.fs.StringVar(&c.addr, "addr", "", "the daemon's HTTP address (default: from --config, else 127.0.0.1:9053)")
	c.fs.StringVar(&c.tokenFile, "token-file", "", "bearer token file (default: from --config)")
	c.fs.StringVarP(&c.output, "output", "o", "text", "output format: text or json (the API's JSON as it answered)")
	c.fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	if code, ok := parseFlags(c.fs, args, c.stderr); !ok {
		return code, false // pflag printed the usage for --help
	}
	if c.output != "text" && c.output != "json" {
		return c.usageError("--output: expected text or json, got %q", c.output), false
	}
	if n := c.fs.NArg(); n < minArgs || n > maxArgs {
		if n > maxArgs {
			return c.usageError("unexpected argument %q", c.fs.Arg(maxArgs)), false
		}
		return c.usageError("expected %s", c.synopsis), false
	}
	return exitOK, true
}

func (c *ctlCmd) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "gslbd ctl %s: %s\n", c.name, fmt.Sprintf(format, args...))
	return exitUsage
}

func (c *ctlCmd) wantJSON() bool { return c.output == "json" }

// ctlResponse is what the daemon answered.
type ctlResponse struct {
	code   int
	status string // "401 Unauthorized"
	body   []byte
}

func (r *ctlResponse) ok() bool { return r.code >= 200 && r.code < 300 }

// call sends one request and returns the answer, or the exit code when
// there is none: 1 when the request was not sent because --config does
// not load, 3 when the daemon could not be reached. With -o json, a JSON
// answer is copied to stdout whatever its status.
func (c *ctlCmd) call(method, path string, query url.Values, body any) (*ctlResponse, int) {
	target, token, err := ctlTarget(c.file, c.addr, c.tokenFile)
	if err != nil {
		// Most often the file was edited and is now invalid: the daemon
		// would refuse it too, so say that, with the errors, as exit 1.
		fmt.Fprintf(c.stderr, "gslbd ctl %s: not sent: %v\n", c.name, err)
		return nil, exitFail
	}
	c.target, c.token = target, token
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			fmt.Fprintf(c.stderr, "gslbd ctl %s: %v\n", c.name, err)
			return nil, exitUsage
		}
		rd = bytes.NewReader(b)
	}
	u := "http://" + target + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		fmt.Fprintf(c.stderr, "gslbd ctl %s: %v\n", c.name, err)
		return nil, exitUsage
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(c.stderr, "gslbd ctl %s: cannot reach the daemon at %s: %v\n", c.name, target, ctlUnwrap(err))
		return nil, exitFatal
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		fmt.Fprintf(c.stderr, "gslbd ctl %s: reading the answer from %s: %v\n", c.name, target, ctlUnwrap(err))
		return nil, exitFatal
	}
	r := &ctlResponse{code: resp.StatusCode, status: resp.Status, body: b}
	if c.wantJSON() && json.Valid(b) {
		c.stdout.Write(b)
		if !bytes.HasSuffix(b, []byte("\n")) {
			fmt.Fprintln(c.stdout)
		}
	}
	return r, exitOK
}

// ctlUnwrap drops the *url.Error wrapping, which repeats the method and
// the URL in every message.
func ctlUnwrap(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// fail reports an answer that is not a success, with the API's error
// message, and returns exit 1.
func (c *ctlCmd) fail(r *ctlResponse, method, path string) int {
	fmt.Fprintf(c.stderr, "gslbd ctl %s: %s: %s\n", c.name, r.status, ctlErrorText(r, method, path))
	return exitFail
}

// ctlErrorText is the API's {"error": "..."} message, or what stands in
// for it when the answer is not the API's (a route this daemon lacks).
func ctlErrorText(r *ctlResponse, method, path string) string {
	var e struct {
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(r.body, &e) == nil {
		switch {
		case e.Error != "":
			return e.Error
		case len(e.Errors) > 0:
			return strings.Join(e.Errors, "; ")
		}
	}
	text := strings.TrimSpace(string(r.body))
	switch r.code {
	case http.StatusNotFound:
		hint := ""
		switch path {
		case "/api/v1/sessions":
			hint = "; it serves sessions only while a service is sticky"
		case "/api/v1/drills":
			hint = "; it may be a gslbd from before drills"
		}
		return fmt.Sprintf("this daemon does not serve %s %s (%s)%s", method, path, text, hint)
	case http.StatusMethodNotAllowed:
		return fmt.Sprintf("this daemon does not accept %s on %s", method, path)
	}
	if text == "" {
		return "no error message"
	}
	return text
}

// get sends a GET and decodes a successful answer into v for the text
// output. done is true when the command has nothing more to do: there was
// no answer, the answer was an error (reported), or -o json printed it;
// code is then the exit code.
func (c *ctlCmd) get(path string, query url.Values, v any) (code int, done bool) {
	r, code := c.call(http.MethodGet, path, query, nil)
	switch {
	case r == nil:
		return code, true
	case !r.ok():
		return c.fail(r, http.MethodGet, path), true
	case c.wantJSON():
		return exitOK, true
	case !c.decode(r, v):
		return exitFail, true
	}
	return exitOK, false
}

// decode unmarshals a successful answer for the text output.
func (c *ctlCmd) decode(r *ctlResponse, v any) bool {
	if err := json.Unmarshal(r.body, v); err != nil {
		fmt.Fprintf(c.stderr, "gslbd ctl %s: the daemon's answer is not what this gslbd understands (%v); -o json shows it as it is\n", c.name, err)
		return false
	}
	return true
}

// ctlTarget finds the daemon's address and token: flags first, then the
// configuration the daemon runs with.
func ctlTarget(file, addr, tokenFile string) (string, string, error) {
	if file != "" && (addr == "" || tokenFile == "") {
		cf := newConfigFlags("ctl")
		cf.file = file
		cfg, err := cf.load()
		if err != nil {
			return "", "", fmt.Errorf("%s does not load, so the daemon would refuse it as well "+
				"(pass --addr and --token-file to send the request anyway):\n%s", file, strings.TrimSpace(joinLines(config.Errors(err))))
		}
		if addr == "" {
			addr = cfg.HTTP.Listen.String()
		}
		if tokenFile == "" {
			return addr, cfg.HTTP.Token, nil
		}
	}
	if addr == "" {
		addr = "127.0.0.1:9053"
	}
	if tokenFile == "" {
		return addr, "", nil
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return "", "", err
	}
	return addr, strings.TrimSpace(string(b)), nil
}

// ---- reload

func ctlReload(c *ctlCmd, args []string) int {
	if code, ok := c.parse(args, 0, 0); !ok {
		return code
	}
	const path = "/api/v1/reload"
	r, code := c.call(http.MethodPost, path, nil, nil)
	if r == nil {
		return code
	}
	var res admin.ReloadResult
	if err := json.Unmarshal(r.body, &res); err != nil || res.Status == "" {
		return c.fail(r, http.MethodPost, path)
	}
	if res.Status != "ok" {
		fmt.Fprintf(c.stderr, "gslbd ctl reload: refused; the previous configuration keeps serving:\n")
		for _, e := range res.Errors {
			fmt.Fprintln(c.stderr, e)
		}
		return exitFail
	}
	if !c.wantJSON() {
		fmt.Fprintf(c.stdout, "reloaded\n")
	}
	return exitOK
}

// ---- status

// The status JSON (health.Status inside admin's envelope), decoded with
// states as strings: health.State only marshals.
type ctlStatusAnswer struct {
	Time   time.Time `json:"time"`
	Ready  bool      `json:"ready"`
	Health struct {
		Datacenters []ctlDatacenter `json:"datacenters"`
	} `json:"health"`
}

type ctlDatacenter struct {
	ID         string        `json:"id"`
	State      string        `json:"state"`
	Since      time.Time     `json:"since"`
	MinHealthy int           `json:"min_healthy"`
	Override   *ctlOverrideS `json:"override"`
	Load       *float64      `json:"reported_load"`
	LatencyMS  *float64      `json:"latency_ms"`
	SlowStart  *float64      `json:"slow_start_share"`
	Endpoints  []ctlEndpoint `json:"endpoints"`
}

type ctlEndpoint struct {
	Address    string        `json:"address"`
	Check      string        `json:"check"`
	Probe      string        `json:"probe"`
	State      string        `json:"state"`
	Since      time.Time     `json:"since"`
	LastProbe  *time.Time    `json:"last_probe"`
	LastResult string        `json:"last_result"`
	RTTMS      float64       `json:"rtt_ms"`
	JitterMS   float64       `json:"jitter_ms"`
	Loss       float64       `json:"loss"`
	Quality    float64       `json:"quality"`
	Flapping   bool          `json:"flapping"`
	Override   *ctlOverrideS `json:"override"`
}

type ctlOverrideS struct {
	State  string    `json:"state"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

func (o *ctlOverrideS) String() string {
	if o == nil {
		return "-"
	}
	return fmt.Sprintf("%s: %s (%s)", o.State, ctlOneLine(o.Reason), o.Since.Format(time.RFC3339))
}

func ctlStatus(c *ctlCmd, args []string) int {
	if code, ok := c.parse(args, 0, 0); !ok {
		return code
	}
	var st ctlStatusAnswer
	if code, done := c.get("/api/v1/status", nil, &st); done {
		return code
	}
	ready := "ready"
	if !st.Ready {
		ready = "starting (not ready yet)"
	}
	fmt.Fprintf(c.stdout, "gslbd at %s: %s, %s at %s\n\n", c.target, ready,
		plural(len(st.Health.Datacenters), "datacenter"), st.Time.UTC().Format(time.RFC3339))
	now := st.Time
	if now.IsZero() {
		now = time.Now()
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATACENTER\tENDPOINT\tSTATE\tSINCE\tFOR\tLAST RESULT\tRTT\tQUALITY\tOVERRIDE")
	for _, d := range st.Health.Datacenters {
		up := 0
		for _, e := range d.Endpoints {
			// As health checking counts them: an override decides, else
			// anything but down (unknown: not probed yet).
			if e.Override != nil && e.Override.State == "up" || e.Override == nil && e.State != "down" {
				up++
			}
		}
		summary := fmt.Sprintf("%d/%d endpoints up", up, len(d.Endpoints))
		if d.SlowStart != nil {
			summary += fmt.Sprintf(", slow start %.0f%%", *d.SlowStart*100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, "-", d.State, ctlTime(d.Since), ctlAge(now, d.Since),
			summary, ctlMS(d.LatencyMS), "-", d.Override)
		for _, e := range d.Endpoints {
			state, result, rtt, quality := e.State, "-", "-", "-"
			if e.Flapping {
				state += ",flapping"
			}
			if e.LastResult != "" {
				result = ctlOneLine(e.LastResult)
			}
			if e.Check != "" {
				rtt = ctlMS(&e.RTTMS)
				quality = strconv.FormatFloat(e.Quality, 'f', 3, 64)
			} else {
				result = "not probed"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, e.Address, state, ctlTime(e.Since), ctlAge(now, e.Since),
				result, rtt, quality, e.Override)
		}
	}
	tw.Flush()
	return exitOK
}

func ctlTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func ctlAge(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 24*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func ctlMS(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', -1, 64) + "ms"
}

// ctlOneLine keeps a free-text cell on its line and in its column.
func ctlOneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ---- explain

func ctlExplain(c *ctlCmd, args []string) int {
	qtype := c.fs.StringP("type", "t", "A", "query type")
	noECS := c.fs.Bool("no-ecs", false, "ask without EDNS Client Subnet, as a resolver that sends none")
	if code, ok := c.parse(args, 2, 2); !ok {
		return code
	}
	name, clientText := c.fs.Arg(0), c.fs.Arg(1)
	if _, err := netip.ParseAddr(clientText); err != nil {
		return c.usageError("CLIENT_IP: expected an IP address, got %q", clientText)
	}
	if _, ok := dns.StringToType[strings.ToUpper(*qtype)]; !ok {
		return c.usageError("--type: expected a DNS type such as A or AAAA, got %q", *qtype)
	}
	q := url.Values{"name": {name}, "client": {clientText}, "type": {strings.ToUpper(*qtype)}}
	if *noECS {
		q.Set("ecs", "false")
	}
	var tr gslb.Trace
	if code, done := c.get("/api/v1/explain", q, &tr); done {
		return code
	}
	ctlPrintTrace(c.stdout, &tr)
	return exitOK
}

func ctlPrintTrace(w io.Writer, t *gslb.Trace) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	if t.Name == "" {
		// The name is in no served zone: the trace stops before anything
		// is recorded.
		line("answer", "%s: the name is in no zone this daemon serves", t.Rcode)
		return
	}
	query := fmt.Sprintf("%s %s from %s", t.Name, t.QType, t.Client)
	if t.ECS != "" {
		query += ", ECS " + t.ECS
	} else {
		query += ", no ECS"
	}
	line("query", "%s", query)
	from := t.ClientSource
	switch from {
	case "ecs":
		from = "the ECS option"
	case "source":
		from = "the source address"
	}
	line("client", "located by %s (%s), keyed on %s", from, t.Located, t.ClientPrefix)
	if l := t.Location; l != nil {
		var place []string
		for _, p := range []string{l.City, l.Subdivision, l.Country, l.Continent} {
			if p != "" {
				place = append(place, p)
			}
		}
		where := fmt.Sprintf("%.2f, %.2f", l.Lat, l.Lon)
		if len(place) > 0 {
			where = strings.Join(place, ", ") + " (" + where + ")"
		}
		if l.ASN != 0 {
			where += fmt.Sprintf(", AS%d", l.ASN)
		}
		where += ", by " + l.Source
		if l.Network.IsValid() {
			where += " " + l.Network.String()
		}
		line("location", "%s", where)
	}
	if t.Service != "" {
		line("service", "%s in zone %s, policy %s", t.Service, t.Zone, t.Policy)
	} else if t.Zone != "" {
		line("zone", "%s (not a service)", t.Zone)
	}
	if t.Target != "" {
		line("target", "%s", t.Target)
	}
	if t.Session != "" {
		line("session", "%s", t.Session)
	}
	if len(t.Candidates) > 0 {
		fmt.Fprintln(w, "candidates:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  \tDATACENTER\tUP\tSCORE\tDISTANCE\tLOAD\tLATENCY\tWHY")
		for _, cd := range t.Candidates {
			mark, up := " ", "no"
			if cd.Chosen {
				mark = "*"
			}
			if cd.Up {
				up = "yes"
			}
			score, dist, load, lat := "-", "-", "-", "-"
			if s := cd.Score; s != nil {
				score = strconv.FormatFloat(s.Score, 'f', -1, 64)
				dist = strconv.FormatFloat(s.DistanceKM, 'f', -1, 64) + "km"
				load = strconv.FormatFloat(s.Load, 'f', -1, 64) + "/" + strconv.FormatFloat(s.Capacity, 'f', -1, 64)
				lat = strconv.FormatFloat(s.LatencyMS, 'f', -1, 64) + "ms"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, cd.Datacenter, up, score, dist, load, lat, ctlOneLine(cd.Why))
		}
		tw.Flush()
	}
	if t.Service != "" {
		switch len(t.Winners) {
		case 0:
			line("winner", "none")
		case 1:
			line("winner", "%s", t.Winners[0])
		default:
			line("winners", "%s", strings.Join(t.Winners, ", "))
		}
	}
	if t.Reason != "" {
		line("reason", "%s", t.Reason)
	}
	line("answer", "%s, %s", t.Rcode, plural(len(t.Answer), "record"))
	for _, a := range t.Answer {
		fmt.Fprintf(w, "%-10s %s\n", "", a)
	}
	if t.ECSScope != nil {
		line("ECS scope", "/%d", *t.ECSScope)
	} else {
		line("ECS scope", "none (no ECS option in the answer)")
	}
}

// ---- drain, undrain, auto

func ctlOverride(state string) func(c *ctlCmd, args []string) int {
	return func(c *ctlCmd, args []string) int {
		reason := c.fs.String("reason", "", "why, for the next operator (required for drain and undrain)")
		by := c.fs.String("by", os.Getenv("USER"), "who sets it, kept with a fleet's override")
		if code, ok := c.parse(args, 1, 2); !ok {
			return code
		}
		dc, endpoint := c.fs.Arg(0), c.fs.Arg(1)
		if state != "auto" && strings.TrimSpace(*reason) == "" {
			return c.usageError("--reason is required, so the next operator knows why")
		}
		path := "/api/v1/datacenters/" + url.PathEscape(dc)
		what := "datacenter " + dc
		if endpoint != "" {
			if _, err := netip.ParseAddr(endpoint); err != nil {
				return c.usageError("ENDPOINT: expected an endpoint's IP address, got %q", endpoint)
			}
			path += "/endpoints/" + url.PathEscape(endpoint)
			what = "endpoint " + endpoint + " of datacenter " + dc
		}
		path += "/override"
		r, code := c.call(http.MethodPost, path, nil, admin.OverrideRequest{State: state, Reason: *reason, By: *by})
		switch {
		case r == nil:
			return code
		case !r.ok():
			return c.fail(r, http.MethodPost, path)
		case c.wantJSON():
			return exitOK
		}
		switch state {
		case "down":
			fmt.Fprintf(c.stdout, "%s drained (forced down): %s\n", what, *reason)
		case "up":
			fmt.Fprintf(c.stdout, "%s forced up: %s\n", what, *reason)
		default:
			fmt.Fprintf(c.stdout, "%s back to its probes\n", what)
		}
		return exitOK
	}
}

// ---- sessions

func ctlSessions(c *ctlCmd, args []string) int {
	client := c.fs.String("client", "", "the client's IP address (cut to the session prefix, as DNS does)")
	service := c.fs.String("service", "", "the sticky service's name, e.g. www.gslb.example")
	if code, ok := c.parse(args, 1, 1); !ok {
		return code
	}
	method := http.MethodGet
	switch c.fs.Arg(0) {
	case "get":
	case "delete":
		method = http.MethodDelete
	default:
		return c.usageError("expected get or delete, got %q", c.fs.Arg(0))
	}
	if _, err := netip.ParseAddr(*client); err != nil {
		return c.usageError("--client: expected an IP address, got %q", *client)
	}
	if *service == "" {
		return c.usageError("--service is required")
	}
	const path = "/api/v1/sessions"
	r, code := c.call(method, path, url.Values{"client": {*client}, "service": {*service}}, nil)
	switch {
	case r == nil:
		return code
	case !r.ok():
		return c.fail(r, method, path)
	case c.wantJSON():
		return exitOK
	}
	if method == http.MethodDelete {
		var del struct {
			Service      string `json:"service"`
			ClientPrefix string `json:"client_prefix"`
		}
		if !c.decode(r, &del) {
			return exitFail
		}
		fmt.Fprintf(c.stdout, "deleted the session of %s at %s; it is placed afresh on its next query\n", del.ClientPrefix, del.Service)
		return exitOK
	}
	var s session.Session
	if !c.decode(r, &s) {
		return exitFail
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "service:\t%s\n", s.Service)
	fmt.Fprintf(tw, "client:\t%s\n", s.Client)
	fmt.Fprintf(tw, "datacenter:\t%s\n", s.Datacenter)
	if s.DisplacedFrom != "" {
		fmt.Fprintf(tw, "displaced from:\t%s\n", s.DisplacedFrom)
	}
	fmt.Fprintf(tw, "id:\t%s\n", s.ID)
	fmt.Fprintf(tw, "created:\t%s\n", ctlTime(s.Created))
	fmt.Fprintf(tw, "last accessed:\t%s\n", ctlTime(s.LastAccessed))
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "data %s:\t%s\n", k, s.Data[k])
	}
	tw.Flush()
	return exitOK
}

// ---- drills

// ctlDrillReport is a drill's report as the drills API describes it.
// Fields whose exact type is the drill runner's business are kept raw
// and printed as they come.
type ctlDrillReport struct {
	ID           json.RawMessage            `json:"id"`
	Service      string                     `json:"service"`
	Fail         string                     `json:"fail"`
	Mode         string                     `json:"mode"`
	Started      json.RawMessage            `json:"started"`
	Finished     json.RawMessage            `json:"finished"`
	DurationMS   float64                    `json:"duration_ms"`
	Success      bool                       `json:"success"`
	SuccessRate  float64                    `json:"success_rate"`
	Steps        []ctlDrillStep             `json:"steps"`
	Probes       []ctlDrillProbe            `json:"probes"`
	ExpectedLoad map[string]json.RawMessage `json:"expected_load"`
}

type ctlDrillStep struct {
	Name     string          `json:"name"`
	Started  json.RawMessage `json:"started"`
	Finished json.RawMessage `json:"finished"`
	Status   string          `json:"status"`
	Result   json.RawMessage `json:"result"`
}

type ctlDrillProbe struct {
	Client json.RawMessage `json:"client"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	OK     bool            `json:"ok"`
	Why    string          `json:"why"`
}

// ctlDrillRequest is the body of POST /api/v1/drills.
type ctlDrillRequest struct {
	Service string   `json:"service"`
	Fail    string   `json:"fail"`
	Probes  []string `json:"probes"`
	Mode    string   `json:"mode"`
}

func ctlDrill(c *ctlCmd, args []string) int {
	service := c.fs.String("service", "", "the service to drill, e.g. www.gslb.example")
	fail := c.fs.String("fail", "", "the datacenter whose loss is drilled")
	probes := c.fs.StringArray("probe", nil, "a client IP address or subnet to check the answers for (repeatable)")
	live := c.fs.Bool("live", false, "really drain the datacenter for the drill (default: a dry run that changes nothing)")
	if code, ok := c.parse(args, 0, 0); !ok {
		return code
	}
	switch {
	case *service == "":
		return c.usageError("--service is required")
	case *fail == "":
		return c.usageError("--fail is required")
	case len(*probes) == 0:
		return c.usageError("at least one --probe IP_OR_SUBNET is required")
	}
	for _, p := range *probes {
		if _, err := netip.ParseAddr(p); err == nil {
			continue
		}
		if _, err := netip.ParsePrefix(p); err != nil {
			return c.usageError("--probe: expected an IP address or a subnet, got %q", p)
		}
	}
	req := ctlDrillRequest{Service: *service, Fail: *fail, Probes: *probes, Mode: "dry-run"}
	if *live {
		req.Mode = "live"
	}
	const path = "/api/v1/drills"
	r, code := c.call(http.MethodPost, path, nil, req)
	switch {
	case r == nil:
		return code
	case !r.ok():
		return c.fail(r, http.MethodPost, path)
	}
	var rep ctlDrillReport
	if err := json.Unmarshal(r.body, &rep); err != nil {
		if !c.wantJSON() {
			c.stdout.Write(r.body)
		}
		fmt.Fprintf(c.stderr, "gslbd ctl drill: the report is not what this gslbd understands (%v); printed as it came\n", err)
		return exitFail
	}
	if !c.wantJSON() {
		ctlPrintDrill(c.stdout, &rep)
	}
	if !rep.Success {
		fmt.Fprintf(c.stderr, "gslbd ctl drill: the drill failed: %s of the probes moved as they should\n", ctlPercent(rep.SuccessRate))
		return exitFail
	}
	return exitOK
}

func ctlDrills(c *ctlCmd, args []string) int {
	if code, ok := c.parse(args, 0, 0); !ok {
		return code
	}
	var list struct {
		Drills []ctlDrillReport `json:"drills"`
	}
	if code, done := c.get("/api/v1/drills", nil, &list); done {
		return code
	}
	if len(list.Drills) == 0 {
		fmt.Fprintln(c.stdout, "no drills yet")
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTARTED\tSERVICE\tFAIL\tMODE\tDURATION\tRESULT\tPROBES OK")
	for _, d := range list.Drills {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ctlRaw(d.ID), ctlRawTime(d.Started), d.Service, d.Fail, d.Mode,
			ctlDuration(d.DurationMS), ctlSuccess(d.Success), ctlPercent(d.SuccessRate))
	}
	tw.Flush()
	return exitOK
}

func ctlPrintDrill(w io.Writer, d *ctlDrillReport) {
	fmt.Fprintf(w, "drill %s: %s of %s, %s: %s, %s of the probes ok\n", ctlRaw(d.ID), d.Fail, d.Service, d.Mode,
		ctlSuccess(d.Success), ctlPercent(d.SuccessRate))
	fmt.Fprintf(w, "started %s, finished %s, took %s\n", ctlRawTime(d.Started), ctlRawTime(d.Finished), ctlDuration(d.DurationMS))
	if len(d.Steps) > 0 {
		fmt.Fprintln(w, "\nsteps:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  STEP\tSTATUS\tTOOK\tRESULT")
		for _, s := range d.Steps {
			took := "-"
			if start, ok := ctlParseTime(s.Started); ok {
				if end, ok := ctlParseTime(s.Finished); ok {
					took = ctlDuration(float64(end.Sub(start)) / float64(time.Millisecond))
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ctlOneLine(s.Name), s.Status, took, ctlOneLine(ctlRaw(s.Result)))
		}
		tw.Flush()
	}
	if len(d.Probes) > 0 {
		fmt.Fprintln(w, "\nprobes:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CLIENT\tBEFORE\tAFTER\tOK\tWHY")
		for _, p := range d.Probes {
			ok, why := "no", "-"
			if p.OK {
				ok = "yes"
			}
			if p.Why != "" {
				why = ctlOneLine(p.Why)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", ctlRaw(p.Client), ctlRaw(p.Before), ctlRaw(p.After), ok, why)
		}
		tw.Flush()
	}
	if len(d.ExpectedLoad) > 0 {
		fmt.Fprintln(w, "\nexpected load:")
		keys := make([]string, 0, len(d.ExpectedLoad))
		for k := range d.ExpectedLoad {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%s\n", k, ctlRaw(d.ExpectedLoad[k]))
		}
		tw.Flush()
	}
}

// ctlRaw prints a JSON value as text: a string as itself, a list of
// strings joined by commas, anything else as compact JSON.
func ctlRaw(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return "-"
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if s == "" {
			return "-"
		}
		return s
	}
	var list []string
	if json.Unmarshal(v, &list) == nil {
		if len(list) == 0 {
			return "none"
		}
		return strings.Join(list, ",")
	}
	var b bytes.Buffer
	if json.Compact(&b, v) == nil {
		return b.String()
	}
	return string(v)
}

// ctlParseTime reads a JSON timestamp (RFC 3339).
func ctlParseTime(v json.RawMessage) (time.Time, bool) {
	var t time.Time
	if len(v) == 0 || string(v) == "null" || json.Unmarshal(v, &t) != nil || t.IsZero() {
		return time.Time{}, false
	}
	return t, true
}

// ctlRawTime prints a JSON timestamp to the second, or the value as it
// came when it is not one.
func ctlRawTime(v json.RawMessage) string {
	if t, ok := ctlParseTime(v); ok {
		return ctlTime(t)
	}
	return ctlRaw(v)
}

func ctlDuration(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func ctlPercent(share float64) string {
	return strconv.FormatFloat(math.Round(share*1000)/10, 'f', -1, 64) + "%"
}

func ctlSuccess(ok bool) string {
	if ok {
		return "success"
	}
	return "FAILED"
}
