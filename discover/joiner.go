package discover

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	// DefaultInterval is the wait between failed join attempts when
	// JoinerConfig.Interval is 0. It matches Consul's retry_interval.
	DefaultInterval = 30 * time.Second

	// DefaultJitter is the jitter fraction used when JoinerConfig.Jitter
	// is 0: each wait is Interval ±10%.
	DefaultJitter = 0.1

	// maxJitter bounds JoinerConfig.Jitter, so that a wait never drops
	// below half the interval.
	maxJitter = 0.5
)

// JoinFunc joins the gossip pool through addrs, a list of host:port
// strings, and returns the number of nodes it contacted. It has the shape
// of Serf's Join with ignoreOld bound; an error with a positive count means
// that some addresses failed and others answered.
type JoinFunc func(addrs []string) (int, error)

// JoinerConfig configures a Joiner. Only Join is required.
type JoinerConfig struct {
	// Entries are the retry_join entries: host, host:port, [ipv6]:port,
	// bare IPv6 addresses, DNS names, or go-discover strings containing
	// "provider=". With no entries, Run returns nil at once.
	Entries []string

	// DefaultPort is the gossip port given to addresses without one.
	// Required (1 to 65535): the agent passes its own gossip port.
	DefaultPort int

	// Interval is the wait between the end of a failed attempt and the
	// next one, before jitter. Default 0 means DefaultInterval (30s).
	Interval time.Duration

	// MaxAttempts is the number of failed attempts after which Run gives
	// up and returns an error wrapping ErrMaxAttempts. Default 0 means
	// retry until the context is done.
	MaxAttempts int

	// Jitter is the fraction of Interval by which each wait is varied at
	// random, so that nodes started together do not retry in step: each
	// wait is in [Interval×(1-Jitter), Interval×(1+Jitter)). At most 0.5.
	// Default 0 means DefaultJitter (0.1); a negative value disables
	// jitter.
	Jitter float64

	// Join is called with the resolved addresses on every attempt that
	// resolved at least one. Required.
	Join JoinFunc

	// Logger receives one warn line per failed attempt and an info line on
	// success. Pass logger.Named("discover"). Nil discards logs.
	Logger hclog.Logger

	// Resolver resolves Entries on every attempt; set it to inject
	// providers or a DNS lookup. Nil means a Resolver with default
	// providers, the system DNS resolver and Logger.
	Resolver *Resolver
}

// Joiner keeps resolving retry_join entries and joining the addresses found
// until one join contacts a node. Build it with NewJoiner and start it with
// Run.
type Joiner struct {
	entries     []string
	redacted    []string
	port        int
	interval    time.Duration
	maxAttempts int
	jitter      float64
	join        JoinFunc
	logger      hclog.Logger
	resolver    *Resolver

	// rand returns a number in [0, 1) for jitter; tests replace it.
	rand func() float64
}

// NewJoiner checks cfg, fills in its defaults and returns a Joiner. Entries
// whose syntax is wrong, or that name an unknown provider, are rejected
// here, all at once, since retrying cannot fix them; errors that may
// clear up (DNS, provider API calls) are left for Run.
func NewJoiner(cfg JoinerConfig) (*Joiner, error) {
	if cfg.Join == nil {
		return nil, errors.New("join func is nil")
	}
	if cfg.DefaultPort < 1 || cfg.DefaultPort > 65535 {
		return nil, fmt.Errorf("default port %d is not a number from 1 to 65535", cfg.DefaultPort)
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("interval %s is negative", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxAttempts < 0 {
		return nil, fmt.Errorf("max attempts %d is negative", cfg.MaxAttempts)
	}
	switch {
	case cfg.Jitter == 0:
		cfg.Jitter = DefaultJitter
	case cfg.Jitter < 0:
		cfg.Jitter = 0
	case cfg.Jitter > maxJitter:
		return nil, fmt.Errorf("jitter %g is greater than %g", cfg.Jitter, maxJitter)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Resolver == nil {
		cfg.Resolver = &Resolver{Logger: cfg.Logger}
	}

	providers := cfg.Resolver.Providers
	if providers == nil {
		providers = DefaultProviders()
	}
	var errs errList
	redacted := make([]string, len(cfg.Entries))
	for i, e := range cfg.Entries {
		redacted[i] = redact(e)
		if err := validateEntry(e, providers); err != nil {
			errs = append(errs, &entryError{entry: redacted[i], err: err})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	return &Joiner{
		entries:     append([]string(nil), cfg.Entries...),
		redacted:    redacted,
		port:        cfg.DefaultPort,
		interval:    cfg.Interval,
		maxAttempts: cfg.MaxAttempts,
		jitter:      cfg.Jitter,
		join:        cfg.Join,
		logger:      cfg.Logger,
		resolver:    cfg.Resolver,
		rand:        rand.Float64,
	}, nil
}

// Run makes a join attempt at once, then one every Interval (with jitter)
// after each failure. An attempt resolves every entry again, then calls
// Join with all the addresses found. Run returns nil as soon as a Join
// contacts at least one node, ctx.Err() once ctx is done, or an error
// wrapping ErrMaxAttempts and the last failure after MaxAttempts failed
// attempts. With no entries it returns nil at once.
//
// Each failed attempt is logged at warn level with its reason; the success
// is logged at info level with the number of nodes contacted.
func (j *Joiner) Run(ctx context.Context) error {
	if len(j.entries) == 0 {
		return nil
	}
	j.logger.Info("joining cluster", "entries", j.redacted,
		"interval", j.interval, "max_attempts", j.maxAttempts)

	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := j.attempt(ctx, attempt)
		if err == nil {
			j.logger.Info("joined cluster", "joined", n, "attempt", attempt)
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The attempt most likely failed because of the cancellation;
			// its error would only be noise.
			return ctxErr
		}
		if j.maxAttempts > 0 && attempt >= j.maxAttempts {
			j.logger.Warn("retry_join attempt failed", "attempt", attempt, "error", err)
			return &maxAttemptsError{attempts: attempt, last: err}
		}
		wait := j.wait()
		j.logger.Warn("retry_join attempt failed", "attempt", attempt, "error", err, "retry_in", wait)

		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// attempt resolves the entries and joins. It returns the number of nodes
// contacted, or an *attemptError when none was.
func (j *Joiner) attempt(ctx context.Context, attempt int) (int, error) {
	addrs, errs := j.resolver.Resolve(ctx, j.entries, j.port)
	if len(addrs) == 0 {
		return 0, &attemptError{resolve: errs}
	}
	j.logger.Debug("joining", "attempt", attempt, "addrs", addrs)
	n, err := j.join(addrs)
	if n > 0 {
		if err != nil || len(errs) > 0 {
			// Joined, so this is not a failure; still worth a warning, as
			// it may hide a typo or a dead node in the configuration.
			j.logger.Warn("retry_join partly failed", "attempt", attempt, "addrs", addrs,
				"error", &attemptError{resolve: errs, join: joinError(len(addrs), err), joined: n})
		}
		return n, nil
	}
	if err == nil {
		err = errors.New("contacted no nodes")
	}
	return 0, &attemptError{resolve: errs, join: joinError(len(addrs), err)}
}

func joinError(n int, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("join %d %s: %w", n, plural(n, "address", "addresses"), err)
}

// wait returns the interval with jitter applied.
func (j *Joiner) wait() time.Duration {
	d := j.interval
	if j.jitter > 0 {
		d += time.Duration((2*j.rand() - 1) * j.jitter * float64(d))
	}
	return d
}

// attemptError is the reason one attempt failed: the entries that failed to
// resolve, and the join error if any address was resolved.
type attemptError struct {
	resolve []error
	join    error
	joined  int // nodes contacted, for a partial failure
}

func (e *attemptError) Error() string {
	var l errList
	switch {
	case e.join != nil:
		l = append(l, e.join)
	case e.joined == 0:
		l = append(l, errors.New("no address resolved"))
	}
	return append(l, e.resolve...).Error()
}

func (e *attemptError) Unwrap() []error {
	errs := append([]error(nil), e.resolve...)
	if e.join != nil {
		errs = append(errs, e.join)
	}
	return errs
}

// maxAttemptsError is returned by Run when MaxAttempts attempts failed.
type maxAttemptsError struct {
	attempts int
	last     error
}

func (e *maxAttemptsError) Error() string {
	return fmt.Sprintf("retry_join: %d %s failed; last error: %v",
		e.attempts, plural(e.attempts, "attempt", "attempts"), e.last)
}

func (e *maxAttemptsError) Unwrap() []error { return []error{ErrMaxAttempts, e.last} }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
