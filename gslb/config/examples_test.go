package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestExamplesLoad loads every configuration the project ships or shows:
// the YAML files under configs/ and every ```yaml block in docs/ and
// README.md. An example an operator copies must work as written.
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	more, _ := filepath.Glob("../../configs/*/*.yaml")
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no configs found under configs/")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, err := Load(f, Options{}); err != nil {
				t.Errorf("%v", err)
			}
		})
	}
	docs, _ := filepath.Glob("../../docs/*.md")
	docs = append(docs, "../../README.md")
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range block.FindAllSubmatch(b, -1) {
			name := filepath.Base(doc) + "#" + itoa(i+1)
			t.Run(name, func(t *testing.T) {
				if _, err := Parse(doc, m[1], Options{}); err != nil {
					t.Errorf("yaml block %d of %s does not load:\n%v", i+1, doc, err)
				}
			})
		}
	}
}

// TestEveryKeyDocumented: docs/configuration.md names every key that can
// be set, so the reference cannot silently fall behind the code.
func TestEveryKeyDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	keys := append(Keys(),
		"datacenters[].id", "datacenters[].region", "datacenters[].lat", "datacenters[].lon",
		"datacenters[].capacity", "datacenters[].load", "datacenters[].latency", "datacenters[].endpoints[].address",
		"zones[].origin", "zones[].ttl", "zones[].soa.mname", "zones[].soa.rname", "zones[].soa.serial",
		"zones[].soa.refresh", "zones[].soa.retry", "zones[].soa.expire", "zones[].soa.minimum", "zones[].soa.ttl",
		"zones[].ns[].name", "zones[].ns[].addresses", "zones[].records[].name", "zones[].records[].type",
		"zones[].records[].ttl", "zones[].records[].data", "zones[].services[].name", "zones[].services[].policy",
		"zones[].services[].datacenters", "zones[].services[].ttl", "zones[].services[].weights",
		"zones[].services[].distance_scale_km", "zones[].services[].latency_scale_ms", "zones[].services[].slack",
		"zones[].services[].answers", "zones[].services[].spread", "zones[].services[].when_all_down",
		"zones[].services[].ratios", "zones[].services[].groups", "zones[].services[].geo",
		"zones[].services[].networks", "zones[].services[].asn", "zones[].services[].networks_file",
		"datacenters[].drain", "datacenters[].min_healthy", "datacenters[].slow_start",
		"datacenters[].endpoints[].check", "datacenters[].endpoints[].check_address", "health.webhooks",
		"health_checks.<name>.type", "health_checks.<name>.interval", "health_checks.<name>.timeout",
		"zones[].services[].sticky", "health_checks.<name>.rise", "drills[].service", "drills[].fail",
		"drills[].probes", "drills[].every", "health_checks.<name>.fall", "health_checks.<name>.expect_status",
		"acme.tsig_keys", "acme.tsig_keys[].name", "acme.tsig_keys[].algorithm", "acme.tsig_keys[].secret",
		"acme.tsig_keys[].secret_file", "acme.tsig_keys[].zones")
	for _, k := range keys {
		if !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
}

func itoa(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}
