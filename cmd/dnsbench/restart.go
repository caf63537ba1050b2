package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dnsbench restart: queries lost while gslbd restarts under a steady
// dnsperf load, three ways: a naive stop and start (the new process binds
// new sockets), socket activation (the sockets outlive the process, as
// with deploy/systemd/gslbd.socket), and hand-over (dns.handover_socket:
// the new process takes the running one's sockets).

const restartZone = "restart.bench.example."

const restartConfig = `
instance: {name: restart-bench}
log: {level: warn}
http: {allow_unauthenticated_loopback: true}
datacenters:
  - {id: dc-a, endpoints: [{address: 192.0.2.1}]}
zones:
  - origin: %s
    soa: {mname: ns1, rname: hostmaster}
    ns: [{name: ns1, addresses: [127.0.0.1]}]
    services:
      - {name: www, datacenters: [dc-a]}
`

type restartOptions struct {
	gslbd, dnsperf string
	qps, rounds    int
	duration       time.Duration
}

func runRestart(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dnsbench restart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o restartOptions
	fs.StringVar(&o.gslbd, "gslbd", "bin/gslbd", "the gslbd binary")
	fs.StringVar(&o.dnsperf, "dnsperf", "dnsperf", "the dnsperf binary")
	fs.IntVar(&o.qps, "qps", 5000, "offered queries per second (dnsperf -Q)")
	fs.IntVar(&o.rounds, "rounds", 3, "restarts per method")
	fs.DurationVar(&o.duration, "duration", 6*time.Second, "dnsperf run per restart; the restart happens a third of the way in")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if o.qps < 1 || o.rounds < 1 || o.rounds > 20 || o.duration < 3*time.Second || o.duration > time.Minute {
		fmt.Fprintln(stderr, "dnsbench restart: -qps ≥ 1, -rounds 1..20, -duration 3s..1m")
		return exitUsage
	}
	dir, err := os.MkdirTemp("", "dnsbench-restart-")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stdout, "restart under %d queries/s for %s, %d rounds per method\n", o.qps, o.duration, o.rounds)
	fmt.Fprintf(stdout, "%-18s %10s %10s %8s %10s\n", "method", "sent", "answered", "lost", "lost/round")
	for _, method := range []string{"stop-start", "socket-activation", "hand-over"} {
		var sent, completed, lost int64
		for r := 0; r < o.rounds; r++ {
			st, err := restartRound(o, method, filepath.Join(dir, fmt.Sprintf("%s-%d", method, r)))
			if err != nil {
				fmt.Fprintf(stderr, "dnsbench restart: %s: %v\n", method, err)
				return exitFail
			}
			sent, completed, lost = sent+st.Sent, completed+st.Completed, lost+st.Lost
		}
		fmt.Fprintf(stdout, "%-18s %10d %10d %8d %10.1f\n", method, sent, completed, lost, float64(lost)/float64(o.rounds))
	}
	return exitOK
}

// restartRound runs dnsperf for o.duration and restarts gslbd by method
// a third of the way in.
func restartRound(o restartOptions, method, dir string) (stats, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return stats{}, err
	}
	cfg := filepath.Join(dir, "gslbd.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, restartConfig, restartZone), 0o600); err != nil {
		return stats{}, err
	}
	files, dnsAddr, httpAddr, err := benchSockets()
	if err != nil {
		return stats{}, err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	args := []string{"serve", "--config", cfg, "--dns.listen", dnsAddr, "--http.listen", httpAddr}
	if method == "hand-over" {
		args = append(args, "--set", "dns.handover_socket="+filepath.Join(dir, "handover.sock"))
	}
	start := func() (*exec.Cmd, error) {
		var cmd *exec.Cmd
		if method == "socket-activation" {
			cmd = exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, o.gslbd}, args...)...)
			cmd.ExtraFiles = files
			cmd.Env = append(os.Environ(), "LISTEN_FDS="+strconv.Itoa(len(files)))
		} else {
			cmd = exec.Command(o.gslbd, args...)
		}
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return cmd, cmd.Start()
	}
	// Only socket activation keeps the sockets; the others bind anew.
	if method != "socket-activation" {
		for _, f := range files {
			f.Close()
		}
		files = nil
	}
	first, err := start()
	if err != nil {
		return stats{}, err
	}
	defer stopProcess(first)
	if err := waitReady(httpAddr, 20*time.Second); err != nil {
		return stats{}, err
	}

	in := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(in, []byte("www."+restartZone+" A\n"), 0o600); err != nil {
		return stats{}, err
	}
	host, port, _ := net.SplitHostPort(dnsAddr)
	perf := exec.Command(o.dnsperf, "-s", host, "-p", port, "-d", in, "-l", strconv.Itoa(int(o.duration.Seconds())),
		"-Q", strconv.Itoa(o.qps), "-t", "2", "-c", "4", "-q", "64")
	var out strings.Builder
	perf.Stdout, perf.Stderr = &out, &out
	perf.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := perf.Start(); err != nil {
		return stats{}, fmt.Errorf("dnsperf: %w", err)
	}
	time.Sleep(o.duration / 3)

	var second *exec.Cmd
	switch method {
	case "stop-start", "socket-activation":
		if err := stopProcess(first); err != nil {
			return stats{}, err
		}
		if second, err = start(); err != nil {
			return stats{}, err
		}
		if err := waitReady(httpAddr, 20*time.Second); err != nil {
			return stats{}, err
		}
	case "hand-over":
		if second, err = start(); err != nil {
			return stats{}, err
		}
		done := make(chan error, 1)
		go func() { done <- first.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			return stats{}, errors.New("the first instance did not hand over within 20s")
		}
	}
	defer stopProcess(second)
	if err := perf.Wait(); err != nil {
		return stats{}, fmt.Errorf("dnsperf: %v: %s", err, out.String())
	}
	return parseDNSPerf(strings.NewReader(out.String()))
}

// benchSockets binds DNS (UDP and TCP on one port) and HTTP on loopback.
func benchSockets() (files []*os.File, dnsAddr, httpAddr string, err error) {
	tl, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, "", "", err
	}
	defer tl.Close()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tl.Addr().(*net.TCPAddr).Port})
	if err != nil {
		return nil, "", "", err
	}
	defer uc.Close()
	if err := uc.SetReadBuffer(8 << 20); err != nil { // as gslbd.socket's ReceiveBuffer
		return nil, "", "", err
	}
	hl, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, "", "", err
	}
	defer hl.Close()
	for _, s := range []interface{ File() (*os.File, error) }{uc, tl, hl} {
		f, err := s.File()
		if err != nil {
			return nil, "", "", err
		}
		files = append(files, f)
	}
	return files, tl.Addr().String(), hl.Addr().String(), nil
}

func waitReady(httpAddr string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+httpAddr+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("gslbd on %s not ready within %s", httpAddr, limit)
}

// stopProcess sends SIGTERM and waits; a process already reaped is fine.
func stopProcess(cmd *exec.Cmd) error {
	if cmd == nil || cmd.ProcessState != nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return nil // already exited; Wait below reaps it
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		return fmt.Errorf("gslbd (pid %d) did not stop within 15s of SIGTERM", cmd.Process.Pid)
	}
}
