package config_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/conclavehq/conclave/config"
)

// This example loads a server's configuration file and overrides two of its
// settings on the command line, as the agent command does.
func ExampleLoad() {
	dir, err := os.MkdirTemp("", "conclave-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	path := filepath.Join(dir, "server.hcl")
	err = os.WriteFile(path, []byte(`
node_name        = "server-1"
server           = true
bootstrap_expect = 3
bind_addr        = "127.0.0.1"
retry_join       = ["127.0.0.2", "127.0.0.3"]
`), 0o600)
	if err != nil {
		fmt.Println(err)
		return
	}

	var flags config.Flags
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	flags.AddTo(fs)
	if err := fs.Parse([]string{"-data-dir", filepath.Join(dir, "data"), "-http-port", "0"}); err != nil {
		fmt.Println(err)
		return
	}

	res, err := config.Load(config.LoadOptions{Paths: []string{path}, Flags: &flags})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range res.Warnings {
		fmt.Println("warning:", w)
	}
	c := res.Config
	fmt.Println("node:", c.NodeName, "server:", c.Server, "expect:", c.BootstrapExpect)
	fmt.Println("advertise:", c.AdvertiseAddr, "http port:", c.Ports.HTTP)
	fmt.Println("join:", c.RetryJoin, "every", c.RetryInterval)
	// Output:
	// node: server-1 server: true expect: 3
	// advertise: 127.0.0.1 http port: 0
	// join: [127.0.0.2 127.0.0.3] every 30s
}

// This example shows how a caller can get at the position of the first
// problem in a configuration.
func ExampleError() {
	dir, err := os.MkdirTemp("", "conclave-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	path := filepath.Join(dir, "server.hcl")
	if err := os.WriteFile(path, []byte("server = true\nbootstrap_expec = 3\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	_, err = config.Load(config.LoadOptions{Paths: []string{path}})
	var e *config.Error
	if errors.As(err, &e) {
		fmt.Printf("%s, line %d, column %d\n", filepath.Base(e.Filename), e.Line, e.Column)
		fmt.Println(e.Summary)
		fmt.Println(e.Detail)
	}
	// Output:
	// server.hcl, line 2, column 1
	// Unsupported argument
	// An argument named "bootstrap_expec" is not expected here. Did you mean "bootstrap_expect"?
}

// This example starts from dev mode and moves the HTTP API to a free port,
// as "conclave agent -dev -http-port 0" does.
func ExampleDev() {
	dev := true
	port := 0
	res, err := config.Load(config.LoadOptions{Flags: &config.Flags{Dev: &dev, HTTPPort: &port}})
	if err != nil {
		fmt.Println(err)
		return
	}
	c := res.Config
	fmt.Println(c.DevMode, c.Server, c.Bootstrap, c.BindAddr, c.ClientAddr, c.Ports.HTTP, c.DataDir == "")
	// Output: true true true 127.0.0.1 127.0.0.1 0 true
}
