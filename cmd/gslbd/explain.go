package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/gslbd/gslbd/gslb"
	"github.com/gslbd/gslbd/gslb/config"
)

// explain shows, offline, how the daemon would answer NAME for a client at
// CLIENT_IP with the given configuration: the same code as the DNS path,
// with every candidate and why it won or lost.
func explain(args []string, stdout, stderr io.Writer) int {
	cf := newConfigFlags("explain")
	cf.fs.SetOutput(stderr)
	qtypeName := cf.fs.StringP("type", "t", "A", "query type")
	noECS := cf.fs.Bool("no-ecs", false, "ask without EDNS Client Subnet, as a resolver that sends none")
	if code, ok := parseFlags(cf.fs, args, stderr); !ok {
		return code
	}
	if cf.fs.NArg() != 2 {
		fmt.Fprintf(stderr, "gslbd explain: expected NAME CLIENT_IP, e.g. gslbd explain -c configs/demo.yaml www.gslb.example 81.2.69.142\n")
		return exitUsage
	}
	client, err := netip.ParseAddr(cf.fs.Arg(1))
	if err != nil {
		fmt.Fprintf(stderr, "gslbd explain: CLIENT_IP: expected an IP address, got %q\n", cf.fs.Arg(1))
		return exitUsage
	}
	qtype, ok := dns.StringToType[strings.ToUpper(*qtypeName)]
	if !ok {
		fmt.Fprintf(stderr, "gslbd explain: --type: expected a DNS type such as A or AAAA, got %q\n", *qtypeName)
		return exitUsage
	}
	cfg, err := cf.load()
	var snap *gslb.Snapshot
	if err == nil {
		snap, err = offlineSnapshot(cfg)
	}
	if err != nil {
		fmt.Fprint(stderr, joinLines(config.Errors(err)))
		return exitFail
	}
	out, _ := json.MarshalIndent(snap.ExplainQuery(cf.fs.Arg(0), qtype, client, *noECS), "", "  ")
	fmt.Fprintln(stdout, string(out))
	return exitOK
}
