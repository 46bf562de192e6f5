// Package discover turns retry_join entries into gossip addresses and keeps
// trying to join the cluster through them until one join succeeds.
//
// # Entries
//
// A retry_join entry is one of:
//
//   - an address: host, host:port, [ipv6]:port, [ipv6], or a bare IPv6
//     address such as ::1 (which never carries a port: "::1:8301" is an
//     IPv6 address, so write [::1]:8301);
//   - a DNS name, with or without a port, which stands for every A and
//     AAAA record it has;
//   - a go-discover string, recognized by containing "provider=", such as
//     `provider=aws tag_key=role tag_value=server` or
//     `provider=k8s label_selector="app=conclave"`. It is parsed by
//     go-discover (values with spaces, '=' or '"' are double-quoted) and
//     handed to the named provider.
//
// An address without a port gets the default gossip port, normally 8301.
// Every go-discover provider is available (see DefaultProviders), including
// "k8s", which go-discover's own default map leaves out. "os" is OpenStack.
// The k8s provider does not read the KUBECONFIG environment variable: give
// the path with kubeconfig=, or rely on $HOME/.kube/config or, inside a
// pod, the service account.
//
// # Kubernetes: readiness gates discovery
//
// go-discover's k8s provider lists the pods that match label_selector and
// field_selector in namespace (default "default") and returns only those
// that are Running and Ready: a pod whose Ready condition is False is left
// out, while a pod with no Ready condition at all is taken. It uses the pod
// IP, or with host_network=true the host IP, and skips a pod that has none
// yet. The port is the default one unless the pod carries the annotation
// consul.hashicorp.com/auto-join-port, a container port name or a number.
//
// So a readiness probe that waits for the cluster (a leader, say) keeps the
// very first servers from finding each other: none is ready until they have
// joined, and they cannot join until one is ready. Give conclave a
// readiness probe that passes once the agent runs, or join through a DNS
// entry instead: the name of a headless Service with
// publishNotReadyAddresses: true, which lists pods before they are ready.
//
// The provider says why it skipped a pod only in its debug log. Explain
// returns those lines in Explanation.Log, and `conclave operator discover`
// prints them, locally or, with -via-agent, as seen from inside the agent's
// pod:
//
//	$ conclave operator discover -via-agent 'provider=k8s label_selector="app=conclave"'
//	Entry     = provider=k8s label_selector="app=conclave"
//	Provider  = k8s
//	Arguments = label_selector="app=conclave"
//	Addresses = 10.8.0.10:8301
//	Log       = [DEBUG] discover-k8s: ignoring pod "conclave-1", not ready state
//	            [DEBUG] discover-k8s: ignoring pod "conclave-2", not running: "Pending"
//
// # Resolving
//
// A Resolver resolves entries into host:port strings ready for Serf's Join,
// deduplicated and in a stable order. It caches nothing, so a DNS name that
// does not resolve yet while pods start is simply tried again next time. A
// failing entry yields an error for that entry and does not stop the
// others. Errors and logs show go-discover strings with credentials (keys
// such as secret_access_key or api_token) redacted. Explain resolves a
// single entry and says how, for debugging.
//
// # Joining
//
// A Joiner owns the retry loop, as nomad's retryJoiner does. It knows
// nothing of Serf: it receives a JoinFunc and calls it. NewJoiner rejects
// entries that can never work (bad syntax, unknown provider); Run then
// makes an attempt at once and another every Interval, with jitter, until
// a join contacts a node, the context is done, or MaxAttempts attempts have
// failed (ErrMaxAttempts). Every failed attempt is logged at warn level
// with its reason.
//
// A typical agent starts it in a tracked goroutine:
//
//	j, err := discover.NewJoiner(discover.JoinerConfig{
//		Entries:     cfg.RetryJoin,
//		DefaultPort: cfg.Ports.SerfLAN,
//		Interval:    cfg.RetryInterval,
//		MaxAttempts: cfg.RetryMax,
//		Join:        pool.Join,
//		Logger:      logger.Named("discover"),
//	})
//	if err != nil {
//		return fmt.Errorf("retry_join: %w", err)
//	}
//	go func() { errCh <- j.Run(ctx) }()
//
// Provider calls take no context, so a slow cloud API delays the end of an
// attempt, and of Run, until the provider's own timeout.
package discover
