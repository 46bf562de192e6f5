package command

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/conclavehq/conclave/agent/api"
)

// LockCommand is "conclave lock": Consul's "consul lock". It holds a lock
// (or, with -n > 1, a slot of a semaphore) under a KV prefix while a child
// command runs, and stops the child when the lock is lost. It is built on
// the lock and semaphore helpers of Consul's Go client (api.LockOpts,
// api.SemaphoreOpts), pointed at the agent, so its semantics are exactly
// those of "consul lock": the same keys (PREFIX/.lock), sessions, retries
// and monitoring.
type LockCommand struct {
	Meta

	// ShutdownCh, when set, replaces SIGINT and SIGTERM as the request to
	// stop (tests close it).
	ShutdownCh <-chan struct{}

	childMu sync.Mutex
	child   *exec.Cmd
}

const lockHelp = `
Usage: conclave lock [options] PREFIX CMD [ARGS...]

  Acquires a lock, or a slot of a semaphore, under the KV prefix PREFIX
  and runs CMD while holding it, as "consul lock" does. With -n=1 (the
  default) the lock is the key PREFIX/.lock; with -n > 1 up to N holders
  run at once, each with a key under PREFIX and the semaphore's state in
  PREFIX/.lock.

  CMD runs through the shell (sh -c) unless -shell=false. SIGHUP, SIGUSR1
  and SIGUSR2 are passed to it. SIGINT or SIGTERM, or the loss of the lock
  (its session invalidated, or its key taken), terminate CMD: first with
  SIGTERM, then after 5 seconds with SIGKILL, to its whole process group.
  Then the lock is released, and its keys removed when no one else uses
  them.

Options:

  -n=<int>
     The number of holders at once. 1 is a lock; more is a semaphore.
     Default: 1.

  -name=<name>
     The name of the session. Default: one made from CMD and PREFIX.

  -timeout=<duration>
     The longest to wait for the lock, such as "15s". 0 waits forever.
     Default: 0.

  -child-exit-code
     Exit with 2 when CMD fails (exits non-zero), as "consul lock" does.
     Without it, the exit code says only whether the lock worked.

  -monitor-retry=<int>
     How many times to retry when the agent answers 500 (no leader) while
     the lock is watched, before the lock counts as lost. Default: 3.

  -pass-stdin
     Pass this command's standard input to CMD.

  -shell
     Run CMD through "sh -c". Default: true.

  -verbose
     Print what the lock is doing.

  -session-ttl=<duration>
     The TTL of the lock's session, renewed while CMD runs (Conclave's
     addition; "consul lock" always uses 15s). Default: 15s.

  -lock-delay=<duration>
     The lock delay of the lock's session: after the session is
     invalidated, no one may take the lock for this long (Conclave's
     addition; Consul's default is 15s). Default: 15s.
` + httpOptionsHelp

// lockKillGrace is how long the child has after SIGTERM before SIGKILL,
// as in consul lock.
const lockKillGrace = 5 * time.Second

// Help returns the usage text of the lock command.
func (c *LockCommand) Help() string { return strings.TrimSpace(lockHelp) }

// Synopsis returns a one-line description of the lock command.
func (c *LockCommand) Synopsis() string { return "Runs a command while holding a lock" }

// locker is what a lock and a semaphore have in common.
type locker struct {
	lock    func(stopCh <-chan struct{}) (<-chan struct{}, error)
	unlock  func() error
	destroy func() error
	inUse   error
}

// lockOptions are the flags and arguments of one conclave lock.
type lockOptions struct {
	limit, monitorRetry                      int
	name, prefix                             string
	command                                  []string
	timeout, sessionTTL, lockDelay           time.Duration
	childExitCode, passStdin, shell, verbose bool
}

// Run acquires the lock, runs the child and returns the exit code.
func (c *LockCommand) Run(args []string) int {
	client, o, ok := c.parse(args)
	if !ok {
		return 1
	}
	ep := client.Endpoint()
	capi, err := consulapi.NewClient(&consulapi.Config{Address: ep.Address, HttpClient: ep.HTTPClient, Token: ep.Token, Datacenter: ep.Datacenter})
	if err != nil {
		c.Ui.Error("Error creating client: " + err.Error())
		return 1
	}
	var lu *locker
	if o.limit == 1 {
		lu, err = setupLock(capi, o.prefix, o.name, o.timeout, o.monitorRetry, o.sessionTTL, o.lockDelay)
	} else {
		lu, err = setupSemaphore(capi, o.prefix, o.name, o.limit, o.timeout, o.monitorRetry, o.sessionTTL)
	}
	if err != nil {
		c.Ui.Error("Lock setup failed: " + err.Error())
		return 1
	}

	forward := make(chan os.Signal, 4)
	signal.Notify(forward, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(forward)
	stop, release := c.stopChannel()
	defer release()

	if o.verbose {
		c.Ui.Info("Attempting lock acquisition")
	}
	lost, err := lu.lock(stop)
	if lost == nil {
		if err == nil {
			c.Ui.Error("Shutdown triggered or timeout during lock acquisition")
		} else {
			c.Ui.Error("Lock acquisition failed: " + err.Error())
		}
		return 1
	}
	code := c.runHolding(o, stop, lost, forward)
	if !c.cleanup(lu, o.verbose) {
		return 1
	}
	return code
}

// parse reads the flags and arguments, and builds the client.
func (c *LockCommand) parse(args []string) (*api.Client, lockOptions, bool) {
	var o lockOptions
	fs := c.FlagSet("lock", c.Help())
	fs.IntVar(&o.limit, "n", 1, "")
	fs.StringVar(&o.name, "name", "", "")
	fs.DurationVar(&o.timeout, "timeout", 0, "")
	fs.BoolVar(&o.childExitCode, "child-exit-code", false, "")
	fs.IntVar(&o.monitorRetry, "monitor-retry", 3, "")
	fs.BoolVar(&o.passStdin, "pass-stdin", false, "")
	fs.BoolVar(&o.shell, "shell", true, "")
	fs.BoolVar(&o.verbose, "verbose", false, "")
	fs.DurationVar(&o.sessionTTL, "session-ttl", 15*time.Second, "")
	fs.DurationVar(&o.lockDelay, "lock-delay", 15*time.Second, "")
	client, ok := c.Setup(fs, args, func() bool {
		switch {
		case fs.NArg() < 2:
			c.Ui.Error("Key prefix and child command must be specified")
		case o.limit <= 0:
			c.Ui.Error("Lock holder limit must be positive")
		case o.timeout < 0:
			c.Ui.Error("Timeout must be positive")
		case o.monitorRetry < 0:
			c.Ui.Error("Number for 'monitor-retry' must be >= 0")
		case o.sessionTTL <= 0 || o.lockDelay <= 0:
			c.Ui.Error("-session-ttl and -lock-delay must be positive")
		default:
			return true
		}
		return false
	})
	if !ok {
		return nil, o, false
	}
	o.prefix = strings.TrimPrefix(fs.Arg(0), "/")
	o.command = fs.Args()[1:]
	if o.name == "" {
		o.name = fmt.Sprintf("Conclave lock for '%s' at '%s'", strings.Join(o.command, " "), o.prefix)
	}
	return client, o, true
}

// stopChannel is closed when the command is to stop: c.ShutdownCh, or
// else the first SIGINT or SIGTERM. release stops listening for them.
func (c *LockCommand) stopChannel() (stop <-chan struct{}, release func()) {
	if c.ShutdownCh != nil {
		return c.ShutdownCh, func() {}
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ch := make(chan struct{})
	go func() {
		if _, ok := <-sigs; ok {
			close(ch)
		}
	}()
	return ch, func() { signal.Stop(sigs) }
}

// runHolding runs the child while the lock is held and returns its exit
// code (1 when it could not start, 0 when a stop came first).
func (c *LockCommand) runHolding(o lockOptions, stop, lost <-chan struct{}, forward <-chan os.Signal) int {
	select {
	case <-stop:
		c.Ui.Error("Shutdown triggered during lock acquisition")
		return 0
	default:
	}
	childDone := make(chan error, 1)
	if err := c.startChild(o.command, o.shell, o.passStdin, childDone); err != nil {
		c.Ui.Error("Error starting handler: " + err.Error())
		return 1
	}
	if o.verbose {
		c.Ui.Info("Lock acquired; running " + strings.Join(o.command, " "))
	}
	return c.supervise(stop, lost, forward, childDone, o.childExitCode, o.verbose)
}

// cleanup releases the lock and removes its keys unless another holder
// still uses them; false when either failed.
func (c *LockCommand) cleanup(lu *locker, verbose bool) bool {
	if err := lu.unlock(); err != nil && !errors.Is(err, consulapi.ErrLockNotHeld) && !errors.Is(err, consulapi.ErrSemaphoreNotHeld) {
		c.Ui.Error("Lock release failed: " + err.Error())
		return false
	}
	if err := lu.destroy(); err != nil {
		if !errors.Is(err, lu.inUse) {
			c.Ui.Error("Lock cleanup failed: " + err.Error())
			return false
		}
		if verbose {
			c.Ui.Info("Cleanup aborted, lock in use")
		}
	} else if verbose {
		c.Ui.Info("Cleanup succeeded")
	}
	return true
}

// supervise waits for the child to exit, the lock to be lost or a stop,
// passing signals on, and returns the exit code.
func (c *LockCommand) supervise(stop, lost <-chan struct{}, forward <-chan os.Signal, childDone <-chan error, childExitCode, verbose bool) int {
	for {
		select {
		case sig := <-forward:
			c.signalChild(sig.(syscall.Signal))
			continue
		case err := <-childDone:
			if err != nil {
				if verbose {
					c.Ui.Info("Child exited: " + err.Error())
				}
				if childExitCode {
					return 2
				}
			}
			return 0
		case <-stop:
			if verbose {
				c.Ui.Info("Shutdown triggered, killing child")
			}
		case <-lost:
			c.Ui.Error("Lock lost, killing child")
		}
		c.killChild(childDone)
		return 1
	}
}

// startChild starts command in a process group of its own; its exit is
// sent on done.
func (c *LockCommand) startChild(command []string, shell, passStdin bool, done chan<- error) error {
	var cmd *exec.Cmd
	if shell {
		cmd = exec.Command("/bin/sh", "-c", strings.Join(command, " "))
	} else {
		cmd = exec.Command(command[0], command[1:]...)
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if passStdin {
		cmd.Stdin = os.Stdin
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.childMu.Lock()
	c.child = cmd
	c.childMu.Unlock()
	go func() { done <- cmd.Wait() }()
	return nil
}

// signalChild sends sig to the child's process group.
func (c *LockCommand) signalChild(sig syscall.Signal) {
	c.childMu.Lock()
	defer c.childMu.Unlock()
	if c.child != nil && c.child.Process != nil {
		_ = syscall.Kill(-c.child.Process.Pid, sig)
	}
}

// killChild terminates the child: SIGTERM, then SIGKILL after
// lockKillGrace, to its process group; it waits for the exit.
func (c *LockCommand) killChild(done <-chan error) {
	c.signalChild(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(lockKillGrace):
	}
	c.signalChild(syscall.SIGKILL)
	<-done
}

func setupLock(client *consulapi.Client, prefix, name string, timeout time.Duration, retries int, ttl, delay time.Duration) (*locker, error) {
	opts := &consulapi.LockOptions{
		Key:              path.Join(prefix, ".lock"),
		SessionName:      name,
		SessionTTL:       ttl.String(),
		LockDelay:        delay,
		MonitorRetries:   retries,
		MonitorRetryTime: consulapi.DefaultMonitorRetryTime,
	}
	if timeout > 0 {
		opts.LockTryOnce, opts.LockWaitTime = true, timeout
	}
	l, err := client.LockOpts(opts)
	if err != nil {
		return nil, err
	}
	return &locker{lock: l.Lock, unlock: l.Unlock, destroy: l.Destroy, inUse: consulapi.ErrLockInUse}, nil
}

func setupSemaphore(client *consulapi.Client, prefix, name string, limit int, timeout time.Duration, retries int, ttl time.Duration) (*locker, error) {
	opts := &consulapi.SemaphoreOptions{
		Prefix:           prefix,
		Limit:            limit,
		SessionName:      name,
		SessionTTL:       ttl.String(),
		MonitorRetries:   retries,
		MonitorRetryTime: consulapi.DefaultMonitorRetryTime,
	}
	if timeout > 0 {
		opts.SemaphoreTryOnce, opts.SemaphoreWaitTime = true, timeout
	}
	s, err := client.SemaphoreOpts(opts)
	if err != nil {
		return nil, err
	}
	return &locker{lock: s.Acquire, unlock: s.Release, destroy: s.Destroy, inUse: consulapi.ErrSemaphoreInUse}, nil
}
