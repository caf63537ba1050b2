package health

import (
	"time"

	"github.com/gslbd/gslbd/idgen"
)

// Event is one state change: an endpoint or a datacenter going up or
// down, or an operator's override. Every event carries an idgen ID so a
// log line, a webhook delivery and an alert can be matched up.
type Event struct {
	ID         idgen.ID  `json:"id"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"` // "endpoint" or "datacenter"
	Datacenter string    `json:"datacenter"`
	Endpoint   string    `json:"endpoint,omitempty"` // address, for endpoint events
	From       string    `json:"from"`               // "up", "down", "unknown"
	To         string    `json:"to"`
	Reason     string    `json:"reason"`   // the probe error, "override by operator: ...", ...
	Instance   string    `json:"instance"` // which gslbd saw it
}
