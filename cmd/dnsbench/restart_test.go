package main

import (
	"bytes"
	"testing"
)

func TestRestartUsage(t *testing.T) {
	for _, args := range [][]string{{"-rounds", "0"}, {"-duration", "1s"}, {"-qps", "0"}, {"-bogus"}} {
		var out, errb bytes.Buffer
		if code := runRestart(args, &out, &errb); code != exitUsage {
			t.Errorf("dnsbench restart %v: exit %d, want %d (usage)", args, code, exitUsage)
		}
	}
}
