// Command gslbd is the gslbd daemon and its operator's tool: it serves
// DNS (serve), checks configurations (check-config), talks to a running
// daemon (ctl) and makes and reads Snowflake IDs (id).
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// Set at build time by the Makefile with -ldflags -X.
var (
	version  = "dev"
	revision = "unknown"
)

// Exit codes, so scripts and systemd can tell failures apart.
const (
	exitOK     = 0
	exitFail   = 1 // the command ran and the answer is no (bad config, reload refused)
	exitUsage  = 2 // the command line itself is wrong
	exitFatal  = 3 // the daemon could not start or stopped on an error
	defaultCfg = "/etc/gslbd/gslbd.yaml"
)

const usage = `gslbd: a global server load balancer that answers DNS.

Usage:
  gslbd serve        --config FILE [flags]   run the daemon
  gslbd check-config --config FILE           validate a configuration
  gslbd explain      --config FILE NAME CLIENT_IP [--type AAAA]   how NAME is answered for a client
  gslbd ctl          status|explain|drain|undrain|auto|sessions|reload|drill|drills [--config FILE | --addr HOST:PORT] [-o json]
  gslbd id new       [--config FILE | --datacenter N --worker N]
  gslbd id parse     ID [--epoch RFC3339]
  gslbd geodb        build --from FILE.csv --out FILE.mmdb | lookup --db FILE.mmdb IP
  gslbd version

Run "gslbd COMMAND --help" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(rest, stderr)
	case "check-config":
		return checkConfig(rest, stdout, stderr)
	case "explain":
		return explain(rest, stdout, stderr)
	case "ctl":
		return ctl(rest, stdout, stderr)
	case "id":
		return id(rest, stdout, stderr)
	case "geodb":
		return geodb(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "gslbd %s (revision %s, %s)\n", version, revision, runtime.Version())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "gslbd: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func joinLines(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error())
		b.WriteByte('\n')
	}
	return b.String()
}
