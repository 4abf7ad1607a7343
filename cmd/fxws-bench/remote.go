package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
)

// workerAPI is what the coordinator drives: a worker in this process or one
// in a child load process (-procs), which speaks JSON lines on stdin/stdout.
type workerAPI interface {
	beginConnect()
	waitConnect() (connectReport, error)
	progress() (progressReport, error)
	start() error
	stop(expected []int64) (measureReport, error)
	close() error
	pid() int
}

type localWorker struct {
	w    *worker
	done chan connectReport
}

func (l *localWorker) beginConnect() {
	l.done = make(chan connectReport, 1)
	go func() { l.done <- l.w.connect(context.Background()) }()
}
func (l *localWorker) waitConnect() (connectReport, error)   { return <-l.done, nil }
func (l *localWorker) progress() (progressReport, error)     { return l.w.progress(), nil }
func (l *localWorker) start() error                          { l.w.start(); return nil }
func (l *localWorker) stop(e []int64) (measureReport, error) { return l.w.stop(e), nil }
func (l *localWorker) close() error                          { l.w.close(); return nil }
func (l *localWorker) pid() int                              { return 0 }

type command struct {
	Cmd      string  `json:"cmd"`
	Expected []int64 `json:"expected,omitempty"`
}

type reply struct {
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

type remoteWorker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
}

// spawnWorker starts this same binary as "fxws-bench worker" for spec.
func spawnWorker(spec workerSpec) (*remoteWorker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("fxws-bench: own executable: %w", err)
	}
	cmd := exec.Command(exe, "worker")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fxws-bench: start load process: %w", err)
	}
	r := &remoteWorker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<16)}
	if _, err := in.Write(jsonLine(spec)); err != nil {
		return nil, fmt.Errorf("fxws-bench: send spec: %w", err)
	}
	return r, nil
}

func (r *remoteWorker) call(c command, into any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.in.Write(jsonLine(c)); err != nil {
		return fmt.Errorf("fxws-bench: load process %d: %w", r.pid(), err)
	}
	line, err := r.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("fxws-bench: load process %d: %w", r.pid(), err)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return fmt.Errorf("fxws-bench: load process %d: bad reply: %w", r.pid(), err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	if into != nil {
		return json.Unmarshal(rep.Data, into)
	}
	return nil
}

func (r *remoteWorker) beginConnect() { _ = r.call(command{Cmd: "connect"}, nil) }
func (r *remoteWorker) waitConnect() (rep connectReport, err error) {
	err = r.call(command{Cmd: "wait"}, &rep)
	return
}
func (r *remoteWorker) progress() (p progressReport, err error) {
	err = r.call(command{Cmd: "progress"}, &p)
	return
}
func (r *remoteWorker) start() error { return r.call(command{Cmd: "start"}, nil) }
func (r *remoteWorker) stop(e []int64) (m measureReport, err error) {
	err = r.call(command{Cmd: "stop", Expected: e}, &m)
	return
}
func (r *remoteWorker) close() error {
	err := r.call(command{Cmd: "close"}, nil)
	r.in.Close()
	if werr := r.cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("fxws-bench: load process: %w", werr)
	}
	return err
}
func (r *remoteWorker) pid() int { return r.cmd.Process.Pid }

// runWorkerProcess is the child side: a spec line, then one reply per
// command line, until close or end of input.
func runWorkerProcess() error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("fxws-bench worker: read spec: %w", err)
	}
	var spec workerSpec
	if err := json.Unmarshal(line, &spec); err != nil {
		return fmt.Errorf("fxws-bench worker: spec: %w", err)
	}
	l := &localWorker{w: newWorker(spec)}
	out := bufio.NewWriter(os.Stdout)
	send := func(v any, err error) {
		var rep reply
		if err != nil {
			rep.Error = err.Error()
		} else if v != nil {
			rep.Data, _ = json.Marshal(v)
		}
		out.Write(jsonLine(rep))
		out.Flush()
	}
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			l.w.close()
			return nil
		}
		var c command
		if err := json.Unmarshal(line, &c); err != nil {
			send(nil, fmt.Errorf("bad command: %w", err))
			continue
		}
		switch c.Cmd {
		case "connect":
			l.beginConnect()
			send(nil, nil)
		case "wait":
			send(l.waitConnect())
		case "progress":
			send(l.progress())
		case "start":
			send(nil, l.start())
		case "stop":
			send(l.stop(c.Expected))
		case "close":
			send(nil, l.close())
			return nil
		default:
			send(nil, fmt.Errorf("unknown command %q", c.Cmd))
		}
	}
}
