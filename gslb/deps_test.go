package gslb

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoRedisOnTheDNSPath keeps the boundary the design draws: nothing the
// DNS packages import may reach go-redis (or the probers), so neither can
// stall or fail an answer except through the small interfaces gslb
// declares.
func TestNoRedisOnTheDNSPath(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/redis/go-redis") || strings.HasPrefix(dep, "github.com/gslbd/gslbd/health") ||
			strings.HasPrefix(dep, "github.com/gslbd/gslbd/session") {
			t.Errorf("gslb/... depends on %s", dep)
		}
	}
}
