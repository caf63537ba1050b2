//go:build !unix

package redistest

import (
	"errors"
	"os"
)

// processesSupported: without SIGSTOP a real server cannot be paused, so
// Start always uses miniredis here (and fails under CI).
const processesSupported = false

var (
	sigStop os.Signal
	sigCont os.Signal
)

type process struct {
	done    chan struct{}
	waitErr error
}

var errUnsupported = errors.New("redistest: redis-server processes need a unix system")

func startProcess(bin, logPath string, args ...string) (*process, error) {
	return nil, errUnsupported
}

func (p *process) signal(os.Signal) error { return errUnsupported }
func (p *process) kill() error            { return errUnsupported }
func (p *process) stop() error            { return errUnsupported }
