package cluster

import (
	"context"
	"sync"
)

// Leadership is the part of consensus.Node that says when this server
// leads.
type Leadership interface {
	LeaderCh() <-chan bool
	IsLeader() bool
}

// Duty is work a leader does while it leads; it returns when ctx ends.
type Duty func(ctx context.Context)

// WhileLeader runs every duty, each in its own goroutine, for each period
// of leadership, until ctx ends: it starts them when this server gains
// leadership, and cancels them and waits for them when it loses it.
// Signals on LeaderCh can coalesce, so it trusts IsLeader over the value
// received.
func WhileLeader(ctx context.Context, l Leadership, duties []Duty) {
	var (
		stop func()
		done chan struct{}
	)
	lead := func(isLeader bool) {
		if stop != nil {
			stop()
			<-done
			stop = nil
		}
		if !isLeader {
			return
		}
		var lctx context.Context
		lctx, stop = context.WithCancel(ctx)
		done = make(chan struct{})
		var wg sync.WaitGroup
		for _, duty := range duties {
			wg.Go(func() { duty(lctx) })
		}
		go func() {
			wg.Wait()
			close(done)
		}()
	}
	defer lead(false)
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-l.LeaderCh():
			lead(isLeader && l.IsLeader())
		}
	}
}
