package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/gslbd/gslbd/gslb/config"
	"github.com/gslbd/gslbd/idgen"
)

// id makes and reads the Snowflake IDs that name sessions, events and
// drills, so an operator can turn one from a log line into its time and
// origin.
func id(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "new" && args[0] != "parse") {
		fmt.Fprintf(stderr, "gslbd id: expected a subcommand: new or parse\n")
		return exitUsage
	}
	sub := args[0]
	fs := pflag.NewFlagSet("id "+sub, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.StringP("config", "c", "", "take the epoch, datacenter and worker IDs from this configuration")
	epochStr := fs.String("epoch", "", "the generator's epoch, RFC 3339 (default "+idgen.DefaultEpoch.Format(time.RFC3339)+")")
	dc := fs.Int("datacenter", 0, "datacenter ID 0..31 (new)")
	worker := fs.Int("worker", 0, "worker ID 0..31 (new)")
	count := fs.IntP("count", "n", 1, "how many IDs to make (new)")
	if code, ok := parseFlags(fs, args[1:], stderr); !ok {
		return code
	}
	epoch := idgen.DefaultEpoch
	if *file != "" {
		cfg, err := config.Load(*file, config.Options{})
		if err != nil {
			fmt.Fprint(stderr, joinLines(config.Errors(err)))
			return exitFail
		}
		epoch = cfg.IDGen.Epoch
		if !fs.Changed("datacenter") {
			*dc = cfg.Instance.DatacenterID
		}
		if !fs.Changed("worker") {
			*worker = cfg.Instance.WorkerID
		}
	}
	if *epochStr != "" {
		t, err := time.Parse(time.RFC3339, *epochStr)
		if err != nil {
			fmt.Fprintf(stderr, "gslbd id: --epoch: expected an RFC 3339 timestamp such as 2025-01-01T00:00:00Z, got %q\n", *epochStr)
			return exitUsage
		}
		epoch = t
	}
	if sub == "new" {
		gen, err := idgen.New(idgen.Config{Epoch: epoch, Datacenter: *dc, Worker: *worker})
		if err != nil {
			fmt.Fprintf(stderr, "gslbd id new: %v\n", err)
			return exitUsage
		}
		for range max(*count, 1) {
			v, err := gen.Next()
			if err != nil {
				fmt.Fprintf(stderr, "gslbd id new: %v\n", err)
				return exitFail
			}
			fmt.Fprintln(stdout, v)
		}
		return exitOK
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "gslbd id parse: expected one ID\n")
		return exitUsage
	}
	parts, err := idgen.ParseString(fs.Arg(0), epoch)
	if err != nil {
		fmt.Fprintf(stderr, "gslbd id parse: %v\n", err)
		return exitFail
	}
	out, _ := json.MarshalIndent(map[string]any{
		"id":         fs.Arg(0),
		"time":       parts.Time.UTC().Format(time.RFC3339Nano),
		"datacenter": parts.Datacenter,
		"worker":     parts.Worker,
		"sequence":   parts.Sequence,
	}, "", "  ")
	fmt.Fprintln(stdout, string(out))
	return exitOK
}
