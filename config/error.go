package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Error is one problem found while loading or validating a configuration,
// together with the place it comes from. Load returns every Error it finds,
// joined with errors.Join; use errors.As to get at the first one.
//
// Error() reads like a compiler message:
//
//	server.hcl:3:5: Unsupported argument; An argument named "bootstrap_expec" is not expected here. Did you mean "bootstrap_expect"?
//	client.hcl:2:1: Server-only setting; bootstrap_expect is only valid on servers, and this agent is a client; set server = true or remove bootstrap_expect.
//	flag -retry-interval: Invalid retry_interval; retry_interval must be positive, got -5s.
type Error struct {
	// Filename is the configuration file the problem is in, as it was given
	// to Load. For a value given on the command line it is the flag, such as
	// "flag -bootstrap-expect" (or "flag -dev" for a dev-mode default). It is
	// empty when the value has no known source, as for a default or a Config
	// built in code and passed to Validate.
	Filename string

	// Line and Column locate the problem in Filename, both starting at 1.
	// Column counts characters, not bytes. Both are 0 when there is no
	// position, as for flags.
	Line, Column int

	// Summary is a short description of the kind of problem, such as
	// "Unsupported argument" or "Invalid retry_interval".
	Summary string

	// Detail explains the problem and, where possible, how to fix it.
	Detail string
}

// Error returns "filename:line:column: summary; detail", leaving out the
// parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Filename != "" {
		b.WriteString(e.Filename)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line) + ":" + strconv.Itoa(e.Column))
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Summary)
	if e.Detail != "" {
		b.WriteString("; ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// rangeError returns an Error located at the start of rng.
func rangeError(rng hcl.Range, summary, detail string) *Error {
	return &Error{
		Filename: rng.Filename,
		Line:     rng.Start.Line,
		Column:   rng.Start.Column,
		Summary:  summary,
		Detail:   detail,
	}
}

// diagErrors turns diagnostics about one file into errors and warnings, in
// the same order. filename is used for diagnostics that carry no range.
func diagErrors(filename string, diags hcl.Diagnostics) (errs []error, warnings []string) {
	for _, d := range diags {
		e := &Error{Filename: filename, Summary: d.Summary, Detail: d.Detail}
		if d.Subject != nil {
			e = rangeError(*d.Subject, d.Summary, d.Detail)
		}
		if d.Severity == hcl.DiagError {
			errs = append(errs, e)
		} else {
			warnings = append(warnings, e.Error())
		}
	}
	return errs, warnings
}

// panicDetail describes a panic in a third-party decoder (gohcl, cty or
// go-sockaddr), which is turned into an ordinary error because no input may
// crash the agent.
func panicDetail(r any) string {
	return fmt.Sprintf("The decoder failed unexpectedly (%v). This is a bug in Conclave; please report it with the input that caused it.", r)
}

// maxQuoted is the longest user value quoted in full in a message.
const maxQuoted = 64

// quote quotes a user value for a message, cutting it short if it is long,
// so that a pasted blob does not drown the message.
func quote(s string) string {
	if utf8.RuneCountInString(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	runes := []rune(s)
	return strconv.Quote(string(runes[:maxQuoted]) + "…")
}
