// Command conclave is the Conclave agent and its command-line interface.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/command"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ui := &cli.BasicUi{Reader: os.Stdin, Writer: os.Stdout, ErrorWriter: os.Stderr}
	c := &cli.CLI{
		Name:         "conclave",
		Version:      command.Version,
		Args:         args,
		Commands:     command.Commands(ui),
		Autocomplete: true,
		HelpWriter:   os.Stdout,
	}
	code, err := c.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error executing CLI: %s\n", err)
		return 1
	}
	return code
}
