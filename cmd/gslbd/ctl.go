package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gslbd/gslbd/gslb/admin"
	"github.com/gslbd/gslbd/gslb/config"
)

// ctl talks to a running daemon over its HTTP listener.
func ctl(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "reload" {
		fmt.Fprintf(stderr, "gslbd ctl: expected a subcommand: reload\n")
		return exitUsage
	}
	fs := pflag.NewFlagSet("ctl reload", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.StringP("config", "c", "", "read http.listen and http.token_file from this configuration")
	addr := fs.String("addr", "", "the daemon's HTTP address (default: from --config, else 127.0.0.1:9053)")
	tokenFile := fs.String("token-file", "", "bearer token file (default: from --config)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the outcome")
	if code, ok := parseFlags(fs, args[1:], stderr); !ok {
		return code
	}
	target, token, err := ctlTarget(*file, *addr, *tokenFile)
	if err != nil {
		// Most often the file was edited and is now invalid: the daemon
		// would refuse it too, so say that, with the errors, as exit 1.
		fmt.Fprintf(stderr, "gslbd ctl reload: not sent: %v\n", err)
		return exitFail
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+target+"/api/v1/reload", bytes.NewReader(nil))
	if err != nil {
		fmt.Fprintf(stderr, "gslbd ctl reload: %v\n", err)
		return exitUsage
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "gslbd ctl reload: %v\n", err)
		return exitFatal
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var res admin.ReloadResult
	if err := json.Unmarshal(body, &res); err != nil || res.Status == "" {
		fmt.Fprintf(stderr, "gslbd ctl reload: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return exitFail
	}
	if res.Status != "ok" {
		fmt.Fprintf(stderr, "gslbd ctl reload: refused; the previous configuration keeps serving:\n")
		for _, e := range res.Errors {
			fmt.Fprintln(stderr, e)
		}
		return exitFail
	}
	fmt.Fprintf(stdout, "reloaded\n")
	return exitOK
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
				"(pass --addr and --token-file to send the reload anyway):\n%s", file, strings.TrimSpace(joinLines(config.Errors(err))))
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
