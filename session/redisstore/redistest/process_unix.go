//go:build unix

package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)

// processesSupported: SIGSTOP and SIGCONT exist, so a real server can be
// paused.
const processesSupported = true

// process is one redis-server. It is not killed if the test binary itself
// is (a go test -timeout panic skips cleanups): Pdeathsig would cover
// that, but it fires when the thread that started the child exits, which
// the Go runtime may do, and a server dying under a running test is worse
// than one outliving a crashed one.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once Wait has returned
	waitErr error         // Wait's result, set before done is closed
}

func startProcess(bin, logPath string, args ...string) (*process, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("redis-server log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// signal sends sig unless the process has exited (and been reaped, after
// which its pid may belong to someone else).
func (p *process) signal(sig os.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("redis-server (pid %d) has exited: %v", p.pid(), p.waitErr)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to redis-server (pid %d): %w", sig, p.pid(), err)
	}
	return nil
}

// kill sends SIGKILL and waits, bounded, until the process is gone.
func (p *process) kill() error {
	_ = p.signal(os.Kill) // fails only if it has exited already
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("redis-server (pid %d) still running %s after SIGKILL", p.pid(), stopTimeout)
	}
}

// stop sends SIGTERM, then SIGKILL if the process has not exited within
// stopTimeout.
func (p *process) stop() error {
	_ = p.signal(syscall.SIGTERM)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	if err := p.kill(); err != nil {
		return err
	}
	return fmt.Errorf("redis-server (pid %d) ignored SIGTERM for %s and was killed", p.pid(), stopTimeout)
}
