package main

import (
	"fmt"
	"io"

	"github.com/gslbd/gslbd/gslb/config"
)

func checkConfig(args []string, stdout, stderr io.Writer) int {
	cf := newConfigFlags("check-config")
	cf.fs.SetOutput(stderr)
	if code, ok := parseFlags(cf.fs, args, stderr); !ok {
		return code
	}
	cfg, err := cf.load()
	if err == nil {
		// Building the snapshot is part of the check: what passes here is
		// exactly what serve and reload would accept.
		_, err = offlineSnapshot(cfg)
	}
	if err != nil {
		fmt.Fprint(stderr, joinLines(config.Errors(err)))
		return exitFail
	}
	var records, services int
	for _, z := range cfg.Zones {
		records += len(z.Records)
		services += len(z.Services)
	}
	fmt.Fprintf(stdout, "%s: ok: %s, %s, %s, %s\n", cfg.File,
		plural(len(cfg.Zones), "zone"), plural(records, "record"),
		plural(services, "service"), plural(len(cfg.Datacenters), "datacenter"))
	return exitOK
}
