package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strings"
)

// The fault suite's pass rule, kept apart from the code that starts
// processes so that it is unit-tested without dnsperf or gslbd.

// faultResult is one window of the suite: dnsperf's counts, the heap
// before the fault and at the end of the window, and what went wrong
// outside the counts (gslbd died, stopped answering, a step failed).
type faultResult struct {
	Name       string `json:"name"`
	Info       bool   `json:"informational,omitempty"` // reported, never judged
	Sent       int64  `json:"sent"`
	Answered   int64  `json:"answered"` // NOERROR and NXDOMAIN
	ServFail   int64  `json:"servfail"`
	Other      int64  `json:"other_rcodes"`
	Lost       int64  `json:"lost"`
	HeapBefore int64  `json:"heap_before_bytes"`
	HeapAfter  int64  `json:"heap_after_bytes"`
	GoBefore   int64  `json:"goroutines_before"`
	GoAfter    int64  `json:"goroutines_after"`
	// UDPDrops is the machine's UDP RcvbufErrors over the window (from
	// /proc/net/snmp, every socket's, -1 when unread): queries the kernel
	// dropped because a receive queue was full, which is where lost
	// queries go when gslbd (or the machine) cannot keep up.
	UDPDrops int64  `json:"udp_rcvbuf_errors"`
	Note     string `json:"note,omitempty"`
	Err      string `json:"error,omitempty"`

	// ServFailWhy is set by a fault that expects SERVFAIL and says why;
	// every fault in the suite leaves it empty: gslbd answers without a
	// session store, with stale health and with the old configuration.
	ServFailWhy string `json:"servfail_expected,omitempty"`
}

// fromStats fills the counts from dnsperf's statistics.
func (r *faultResult) fromStats(s stats) {
	r.Sent, r.Lost = s.Sent, s.Lost
	r.Answered, r.ServFail, r.Other = 0, 0, 0
	for rc, n := range s.Rcodes {
		switch rc {
		case "NOERROR", "NXDOMAIN":
			r.Answered += n
		case "SERVFAIL":
			r.ServFail += n
		default:
			r.Other += n
		}
	}
}

// passRule is the suite's verdict on one fault against the no-fault
// baseline of the same run.
type passRule struct {
	// A fault may lose max(LostMin, LostFrac × sent) queries more than the
	// worst baseline: the machine is shared, and a baseline window loses a
	// few queries to scheduling alone.
	LostMin  int64
	LostFrac float64
	// The heap at the end may be HeapFrac times the heap before, or
	// HeapSlack bytes more, whichever is larger: a fault may leave caches
	// refilled or a reconnect buffer, not a leak.
	HeapFrac  float64
	HeapSlack int64
}

var defaultPassRule = passRule{LostMin: 10, LostFrac: 0.001, HeapFrac: 1.5, HeapSlack: 20 << 20}

func (p passRule) String() string {
	return fmt.Sprintf("PASS when: lost ≤ baseline lost + max(%d, %.1f%% of sent); SERVFAIL ≤ baseline SERVFAIL "+
		"(no fault expects any); heap after ≤ max(%.1f × before, before + %d MiB); gslbd alive and answering at the end",
		p.LostMin, p.LostFrac*100, p.HeapFrac, p.HeapSlack>>20)
}

func (p passRule) lostAllowance(sent int64) int64 {
	return max(p.LostMin, int64(math.Ceil(p.LostFrac*float64(sent))))
}

func (p passRule) heapLimit(before int64) int64 {
	return max(int64(p.HeapFrac*float64(before)), before+p.HeapSlack)
}

// judge returns "PASS", "FAIL" or "info" (informational runs), with the
// reasons for a FAIL. base is the worst of the baseline windows.
func (p passRule) judge(base, r faultResult) (string, []string) {
	if r.Info {
		return "info", nil
	}
	var why []string
	if r.Err != "" {
		why = append(why, r.Err)
	}
	if r.Sent == 0 {
		why = append(why, "dnsperf sent nothing")
	}
	if allow := p.lostAllowance(r.Sent); r.Lost > base.Lost+allow {
		why = append(why, fmt.Sprintf("lost %d > baseline %d + %d", r.Lost, base.Lost, allow))
	}
	if r.ServFail > base.ServFail && r.ServFailWhy == "" {
		why = append(why, fmt.Sprintf("%d SERVFAIL, baseline %d, none expected", r.ServFail, base.ServFail))
	}
	if r.HeapBefore <= 0 || r.HeapAfter <= 0 {
		why = append(why, "heap not read")
	} else if lim := p.heapLimit(r.HeapBefore); r.HeapAfter > lim {
		why = append(why, fmt.Sprintf("heap %s → %s, above %s", mib(r.HeapBefore), mib(r.HeapAfter), mib(lim)))
	}
	if len(why) > 0 {
		return "FAIL", why
	}
	return "PASS", nil
}

// worstBaseline combines the baseline windows: the most lost and the
// most SERVFAIL of any, so that a fault is held to what the machine did
// without one at its noisiest in this run.
func worstBaseline(bs []faultResult) faultResult {
	var w faultResult
	for i, b := range bs {
		if i == 0 || b.Lost > w.Lost {
			w.Lost = b.Lost
		}
		w.ServFail = max(w.ServFail, b.ServFail)
		w.Sent = max(w.Sent, b.Sent)
	}
	return w
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// printFaults writes the table and returns how many faults failed.
func printFaults(w io.Writer, p passRule, baselines, results []faultResult) int {
	base := worstBaseline(baselines)
	fmt.Fprintln(w, p)
	fmt.Fprintf(w, "%-22s %7s %8s %8s %6s %6s %8s %7s %6s %19s %9s  %s\n",
		"fault", "sent", "answered", "SERVFAIL", "other", "lost", "lost/bl", "udpdrop", "verdict", "heap before→after", "gorout.", "note")
	failed := 0
	row := func(r faultResult, verdict string, why []string) {
		note := r.Note
		if len(why) > 0 {
			note = strings.Join(why, "; ") + ifNote(note)
		}
		fmt.Fprintf(w, "%-22s %7d %8d %8d %6d %6d %8s %7d %6s %19s %9s  %s\n",
			r.Name, r.Sent, r.Answered, r.ServFail, r.Other, r.Lost, lostRatio(r.Lost, base.Lost), r.UDPDrops, verdict,
			mib(r.HeapBefore)+"→"+mib(r.HeapAfter), fmt.Sprintf("%d→%d", r.GoBefore, r.GoAfter), note)
	}
	for _, b := range baselines {
		row(b, "base", nil)
	}
	for _, r := range results {
		v, why := p.judge(base, r)
		if v == "FAIL" {
			failed++
		}
		row(r, v, why)
	}
	fmt.Fprintf(w, "%d of %d faults failed (baseline: worst of %d no-fault windows, lost %d)\n",
		failed, countJudged(results), len(baselines), base.Lost)
	return failed
}

func ifNote(n string) string {
	if n == "" {
		return ""
	}
	return " | " + n
}

func countJudged(rs []faultResult) int {
	n := 0
	for _, r := range rs {
		if !r.Info {
			n++
		}
	}
	return n
}

// lostRatio is lost against the baseline's, "-" when both are zero.
func lostRatio(lost, base int64) string {
	switch {
	case lost == 0 && base == 0:
		return "-"
	case base == 0:
		return "∞"
	}
	return fmt.Sprintf("%.2f", float64(lost)/float64(base))
}

// metricValue reads one unlabelled series (such as
// go_memstats_heap_inuse_bytes) from a Prometheus text exposition.
func metricValue(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok || !strings.HasPrefix(rest, " ") {
			continue
		}
		v, err := firstFloat(strings.TrimSpace(rest))
		if err != nil || math.IsNaN(v) {
			return 0, fmt.Errorf("metrics: %s: bad value %q", name, rest)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("metrics: no %s", name)
}

// udpRcvbufErrors reads Udp RcvbufErrors from /proc/net/snmp's text: a
// line of field names, then a line of values, both starting "Udp:".
func udpRcvbufErrors(snmp io.Reader) (int64, error) {
	sc := bufio.NewScanner(snmp)
	var names []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				return firstInt(f[i])
			}
		}
		break
	}
	return 0, fmt.Errorf("/proc/net/snmp: no Udp RcvbufErrors")
}
