package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gslbd/gslbd/gslb/config"
)

// gdnsd is the field's reference: gdnsd 3 (Debian package) with
// plugin_geoip choosing the nearest datacenter by coordinates, which is
// what gslbd's score policy does when load and latency are equal. Its
// configuration is derived from the one gslbd serves (-config), so the
// two answer the same names from the same database and datacenters.
type gdnsdSetup struct {
	db     string    // the GeoIP2 city database
	dcs    []gdnsdDC // the geo service's datacenters, in configured order
	ttl    uint32    // the geo service's TTL
	static [2]string // -name and -answer
	geo    string    // -geo-name
}

type gdnsdDC struct {
	id       string
	lat, lon float64
	addr     string // its first IPv4 endpoint
}

// newGdnsdSetup reads what gdnsd must serve from gslbd's configuration:
// the city database, and the datacenters and TTL of the service geoName.
func newGdnsdSetup(cfgPath, name, answer, geoName string) (*gdnsdSetup, error) {
	cfg, err := config.Load(cfgPath, config.Options{})
	if err != nil {
		return nil, err
	}
	if cfg.GeoIP.CityDB == "" {
		return nil, fmt.Errorf("%s: geoip.city_db is not set: gdnsd would have nothing to locate clients with", cfgPath)
	}
	// gdnsd reads a relative path from its own configuration directory.
	db, err := filepath.Abs(cfg.GeoIP.CityDB)
	if err != nil {
		return nil, err
	}
	g := &gdnsdSetup{db: db, static: [2]string{name, answer}, geo: geoName}
	byID := map[string]config.Datacenter{}
	for _, dc := range cfg.Datacenters {
		byID[dc.ID] = dc
	}
	for _, z := range cfg.Zones {
		for _, svc := range z.Services {
			if !strings.EqualFold(svc.Owner(), geoName) {
				continue
			}
			if svc.Policy != "score" {
				return nil, fmt.Errorf("%s: service %s has policy %s; gdnsd's nearest-by-coordinates map stands for score only", cfgPath, geoName, svc.Policy)
			}
			g.ttl = *svc.TTL
			for _, id := range svc.Datacenters {
				dc := byID[id]
				if dc.Lat == nil || dc.Lon == nil {
					return nil, fmt.Errorf("%s: datacenter %s has no coordinates", cfgPath, id)
				}
				d := gdnsdDC{id: id, lat: *dc.Lat, lon: *dc.Lon}
				for _, ep := range dc.Endpoints {
					if ep.Address.Is4() {
						d.addr = ep.Address.String()
						break
					}
				}
				if d.addr == "" {
					return nil, fmt.Errorf("%s: datacenter %s has no IPv4 endpoint", cfgPath, id)
				}
				g.dcs = append(g.dcs, d)
			}
		}
	}
	if len(g.dcs) == 0 {
		return nil, fmt.Errorf("%s: no score service named %s", cfgPath, geoName)
	}
	return g, nil
}

// write lays out a gdnsd configuration directory serving on addr (host:port).
// One UDP and one TCP thread: the server is pinned to one core, where
// more threads add only switching.
func (g *gdnsdSetup) write(dir, addr string) error {
	if !strings.HasSuffix(g.static[0], ".") || !strings.HasSuffix(g.geo, ".") {
		return errors.New("gdnsd: names must be fully qualified")
	}
	zone, ok := commonZone(g.static[0], g.geo)
	if !ok {
		return fmt.Errorf("gdnsd: %s and %s share no zone below the root", g.static[0], g.geo)
	}
	for _, d := range []string{"zones", "run", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	var ids, coords, dcmap []string
	for _, d := range g.dcs {
		ids = append(ids, d.id)
		coords = append(coords, fmt.Sprintf("        %s => [ %s, %s ]", d.id, ftoa(d.lat), ftoa(d.lon)))
		dcmap = append(dcmap, fmt.Sprintf("          %s => %s", d.id, d.addr))
	}
	conf := fmt.Sprintf(`options => {
  listen => [ %s ]
  udp_threads => 1
  tcp_threads => 1
  run_dir => %s
  state_dir => %s
}
plugins => {
  geoip => {
    maps => {
      bench => {
        geoip2_db => %s
        datacenters => [ %s ]
        auto_dc_coords => {
%s
        }
        auto_dc_limit => 1
      }
    }
    resources => {
      geo => {
        map => bench
        dcmap => {
%s
        }
      }
    }
  }
}
`, addr, filepath.Join(dir, "run"), filepath.Join(dir, "state"), g.db, strings.Join(ids, ", "),
		strings.Join(coords, "\n"), strings.Join(dcmap, "\n"))
	z := fmt.Sprintf(`@ 300 SOA ns1.%[1]s hostmaster.%[1]s 1 7200 3600 1209600 300
@ 300 NS ns1.%[1]s
ns1.%[1]s 300 A 127.0.0.1
%[2]s 300 A %[3]s
%[4]s %[5]d DYNA geoip!geo
`, zone, g.static[0], g.static[1], g.geo, g.ttl)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(conf), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "zones", strings.TrimSuffix(zone, ".")), []byte(z), 0o644)
}

// commonZone is the longest common parent of two names, below the root.
func commonZone(a, b string) (string, bool) {
	la := strings.Split(strings.TrimSuffix(strings.ToLower(a), "."), ".")
	lb := strings.Split(strings.TrimSuffix(strings.ToLower(b), "."), ".")
	var common []string
	for i := 1; i <= min(len(la), len(lb)); i++ {
		if la[len(la)-i] != lb[len(lb)-i] {
			break
		}
		common = append([]string{la[len(la)-i]}, common...)
	}
	// The zone must be a parent of both, not one of the names itself.
	if len(common) == 0 || len(common) == len(la) || len(common) == len(lb) {
		return "", false
	}
	return strings.Join(common, ".") + ".", true
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// gdnsdScenarios are the scenarios gdnsd serves: no static-ecs, which
// splits gslbd's own costs.
func gdnsdScenarios(scens []string) []string {
	var out []string
	for _, s := range scens {
		if s == scStatic || isGeo(s) {
			out = append(out, s)
		}
	}
	return slices.Clip(out)
}
