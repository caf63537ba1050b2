package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestStatusPage fetches the status page from the real daemon, then loads
// it in headless Chromium, which runs no script the page does not have:
// what an operator's browser shows.
func TestStatusPage(t *testing.T) {
	d := startDaemon(t, repoFile("configs", "demo.yaml"))
	url := "http://" + d.http + "/"
	code, body := httpDo(t, "GET", url, "")
	if code != 200 {
		t.Fatalf("GET /: got %d %s", code, trim(body))
	}
	wantRows := []string{
		`<tr id="dc-us-east-1" data-state="up">`,
		`<tr id="dc-eu-central-1" data-state="up">`,
		`<tr id="dc-ap-southeast-1" data-state="up">`,
	}
	for _, want := range append(wantRows, "0 / 1000 (0%)", "0 / 500 (0%)", `id="readiness">ready<`) {
		if !strings.Contains(body, want) {
			t.Errorf("GET /: lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Error("GET /: the page has a script tag")
	}
	// The first view started sampling; answers given now show as shares
	// at the next sample, ten seconds on.
	for range 5 {
		d.exchange(t, "udp", "www.gslb.example.", dns.TypeA)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body = httpDo(t, "GET", url, "")
		if strings.Contains(body, `data-service="www.gslb.example."`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer shares for www.gslb.example. after 30s:\n%s", body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(body, "5 answers") || !strings.Contains(body, "100%") {
		t.Errorf("shares: want www's 5 answers, all from one datacenter:\n%s", body)
	}

	dom := chromiumDOM(t, url)
	for _, want := range append(wantRows, ">us-east-1<", ">eu-central-1<", ">ap-southeast-1<", `class="state up">up<`) {
		if !strings.Contains(dom, want) {
			t.Errorf("Chromium's DOM lacks %q:\n%s", want, dom)
		}
	}
}

// chromiumDOM loads url in headless Chromium and returns the DOM it built.
// CI installs Chromium (Debian package chromium); elsewhere the test skips
// without it.
func chromiumDOM(t *testing.T, url string) string {
	t.Helper()
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; CI must install the Debian package chromium")
		}
		t.Skip("chromium not installed (Debian package chromium); CI installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	cmd.WaitDelay = 5 * time.Second // a child keeping the pipes open must not hang the test
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("chromium did not finish in 60s:\n%s", stderr.String())
	}
	if err != nil || len(out) == 0 {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	return string(out)
}
