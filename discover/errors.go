package discover

import "errors"

// Sentinel errors. Errors returned by this package wrap them; test for them
// with errors.Is.
var (
	// ErrMaxAttempts is wrapped by the error (*Joiner).Run returns after
	// JoinerConfig.MaxAttempts attempts have failed. The same error also
	// wraps the reason the last attempt failed.
	ErrMaxAttempts = errors.New("retry_join: max attempts reached")

	// ErrInvalidAddress means an entry, or an address returned by a
	// go-discover provider, is not one of host, host:port, [ipv6]:port,
	// [ipv6] or a bare IP address. Retrying cannot fix it.
	ErrInvalidAddress = errors.New("invalid address")

	// ErrInvalidProviderConfig means an entry containing "provider=" cannot
	// be parsed by go-discover, or names a provider that is not registered.
	// Retrying cannot fix it.
	ErrInvalidProviderConfig = errors.New("invalid go-discover config")

	// ErrNoAddresses means an entry resolved without error but yielded no
	// address: a DNS name without A or AAAA records, or a provider that
	// found no matching nodes (yet). Retrying may fix it.
	ErrNoAddresses = errors.New("no addresses found")
)
