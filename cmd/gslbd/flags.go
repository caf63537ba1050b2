package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/gslbd/gslbd/gslb/config"
)

// configFlags are the flags every config-reading command shares. Flags
// named by key path override the file (and the environment) through
// config.Options, so --dns.listen is dns.listen.
type configFlags struct {
	fs   *pflag.FlagSet
	file string
	set  []string
}

func newConfigFlags(name string) *configFlags {
	c := &configFlags{fs: pflag.NewFlagSet(name, pflag.ContinueOnError)}
	c.fs.StringVarP(&c.file, "config", "c", defaultCfg, "configuration file (YAML)")
	c.fs.StringArrayVar(&c.set, "set", nil, "override a key: --set dns.udp_size=1400 (repeatable)")
	c.fs.String("log.level", "", "override log.level: debug, info, warn, error")
	c.fs.String("log.format", "", "override log.format: text, json")
	c.fs.String("dns.listen", "", "override dns.listen: comma-separated address:port list")
	c.fs.String("http.listen", "", "override http.listen: address:port")
	return c
}

func (c *configFlags) options() config.Options {
	return config.Options{Flags: c.fs, Set: c.set}
}

func (c *configFlags) load() (*config.Config, error) {
	return config.Load(c.file, c.options())
}

// parseFlags parses args and, when that fails, says why: pflag itself
// prints nothing for a bad flag in ContinueOnError mode.
func parseFlags(fs *pflag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return exitOK, true
	case errors.Is(err, pflag.ErrHelp):
		return exitOK, false
	default:
		fmt.Fprintf(stderr, "gslbd %s: %v\n", fs.Name(), err)
		return exitUsage, false
	}
}
