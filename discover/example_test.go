package discover_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/conclavehq/conclave/discover"
)

// podsProvider stands in for go-discover's k8s provider, which needs a
// cluster.
type podsProvider struct{}

func (podsProvider) Addrs(args map[string]string, _ *log.Logger) ([]string, error) {
	return []string{"10.8.0.11", "10.8.0.12:7301"}, nil
}

func (podsProvider) Help() string { return "k8s: lists pods" }

// lookupHost stands in for the system's DNS resolver.
func lookupHost(_ context.Context, host string) ([]string, error) {
	if host == "servers.conclave.internal" {
		return []string{"10.0.0.1", "10.0.0.2", "fd00::1"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func ExampleResolver_Resolve() {
	r := &discover.Resolver{
		Providers:  map[string]discover.Provider{"k8s": podsProvider{}},
		LookupHost: lookupHost,
	}
	addrs, errs := r.Resolve(context.Background(), []string{
		"10.0.0.1",
		"[fd00::2]:7301",
		"servers.conclave.internal",
		"not-yet.conclave.internal",
		`provider=k8s label_selector="app=conclave"`,
	}, 8301)
	for _, a := range addrs {
		fmt.Println(a)
	}
	for _, err := range errs {
		fmt.Println("error:", err)
	}
	// Output:
	// 10.0.0.1:8301
	// [fd00::2]:7301
	// 10.0.0.2:8301
	// [fd00::1]:8301
	// 10.8.0.11:8301
	// 10.8.0.12:7301
	// error: entry "not-yet.conclave.internal": lookup not-yet.conclave.internal: no such host
}

func ExampleResolver_Explain() {
	r := &discover.Resolver{Providers: map[string]discover.Provider{"k8s": podsProvider{}}}
	x, err := r.Explain(context.Background(),
		`provider=k8s label_selector="app=conclave" kubeconfig=/etc/conclave/kubeconfig`, 8301)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("provider:", x.Provider)
	fmt.Println("label_selector:", x.Args["label_selector"])
	fmt.Println("kubeconfig:", x.Args["kubeconfig"])
	fmt.Println("addrs:", x.Addrs)
	// Output:
	// provider: k8s
	// label_selector: app=conclave
	// kubeconfig: /etc/conclave/kubeconfig
	// addrs: [10.8.0.11:8301 10.8.0.12:7301]
}

func ExampleJoiner_Run() {
	attempts := 0
	j, err := discover.NewJoiner(discover.JoinerConfig{
		Entries:     []string{"servers.conclave.internal"},
		DefaultPort: 8301,
		Interval:    10 * time.Millisecond,
		MaxAttempts: 5,
		// In the agent: Join: pool.Join, with the gossip pool's Join.
		Join: func(addrs []string) (int, error) {
			attempts++
			if attempts < 3 {
				return 0, fmt.Errorf("no node answered at %v", addrs)
			}
			return len(addrs), nil
		},
		Resolver: &discover.Resolver{LookupHost: lookupHost},
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	if err := j.Run(context.Background()); err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("joined after", attempts, "attempts")
	// Output:
	// joined after 3 attempts
}
