package agent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// leaveTimeout bounds a graceful leave: waiting for the leader to remove
// this server from Raft and for the gossip leave to spread.
const leaveTimeout = 10 * time.Second

// Leave leaves the cluster gracefully: a server is removed from the Raft
// configuration first (by itself when it is the leader, else by the leader
// once it sees the gossip leave), then the gossip leave spreads.
func (a *Agent) Leave() error {
	if !a.leaving.CompareAndSwap(false, true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	a.logger.Info("leaving cluster")
	// The last server of a cluster cannot remove itself; it just goes.
	alone := true
	if a.node != nil {
		if servers, _, err := a.node.Configuration(); err == nil {
			for _, s := range servers {
				alone = alone && s.ID == a.id
			}
		}
	}
	if a.node != nil && !alone && a.node.IsLeader() {
		if err := a.node.RemoveServer(ctx, a.id); err != nil {
			a.logger.Error("failed to remove self from raft configuration", "error", err)
		}
	}
	if err := a.pool.Leave(); err != nil {
		return fmt.Errorf("leave gossip pool: %w", err)
	}
	if a.node != nil && !alone {
		a.waitRemoved(ctx)
	}
	return nil
}

// waitRemoved waits until this server is no longer in its own Raft
// configuration, or ctx ends.
func (a *Agent) waitRemoved(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		servers, _, err := a.node.Configuration()
		if err != nil {
			return
		}
		present := false
		for _, s := range servers {
			present = present || s.ID == a.id
		}
		if !present {
			return
		}
		select {
		case <-ctx.Done():
			a.logger.Warn("timed out waiting to be removed from the raft configuration")
			return
		case <-t.C:
		}
	}
}

// Shutdown stops the agent without leaving (call Leave first for a
// graceful exit). It undoes New and Start in reverse, and the order is the
// point:
//
//  1. HTTP first, so clients learn at once that this node is going away
//     (and the readiness check answers 503 from the moment it begins);
//  2. a leader that did not leave hands leadership over, while Raft and
//     the server port still run, so the cluster need not wait an election
//     timeout;
//  3. the server port's HTTP channel and the background loops;
//  4. Raft, so it stops replicating; then the server port under it;
//  5. gossip last, so the others see this node fail only once it no longer
//     takes part in Raft.
//
// ShutdownCh is closed when all of it is done. It may be called more than
// once.
func (a *Agent) Shutdown() error {
	a.shutMu.Lock()
	defer a.shutMu.Unlock()
	if a.shutdown {
		return nil
	}
	a.shutdown = true
	a.stopping.Store(true)
	a.logger.Info("shutting down agent")
	if a.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a.httpSrv.Shutdown(ctx)
		cancel()
	}
	a.handOffLeadership()
	if a.fwdSrv != nil {
		a.fwdSrv.Close()
	}
	if a.cancel != nil {
		a.cancel()
	}
	err := a.closeAll(!a.leaving.Load())
	a.wg.Wait()
	close(a.shutCh)
	return err
}

// announceTimeout bounds the wait for the shutdown announcement to go out.
const announceTimeout = time.Second

// closeAll closes whatever New opened, in reverse. With announce, once Raft is down,
// it tells the pool at once that this member is gone, as failed, not left:
// failure detection would take seconds, and until then the others would
// keep routing to it and refuse its name at a new address.
func (a *Agent) closeAll(announce bool) error {
	var errs []error
	for _, ln := range a.httpListeners() {
		ln.Close()
	}
	if a.node != nil {
		if err := a.node.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shut down raft: %w", err))
		}
	}
	if a.mux != nil {
		a.mux.Close()
	}
	if a.pool != nil {
		if announce {
			if err := a.pool.AnnounceFailure(announceTimeout); err != nil {
				a.logger.Warn("could not announce the shutdown to the pool", "error", err)
			}
		}
		if err := a.pool.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shut down gossip: %w", err))
		}
	}
	return errors.Join(errs...)
}
