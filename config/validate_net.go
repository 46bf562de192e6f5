package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/go-sockaddr/template"
)

// checkAddrs resolves the three addresses and returns the bind and client
// addresses for the port checks; an address that is invalid is returned as
// the zero netip.Addr.
func (v *validator) checkAddrs() (bind, client netip.Addr) {
	c := v.c
	bind = v.resolve("bind_addr", &c.BindAddr)
	client = v.resolve("client_addr", &c.ClientAddr)

	if c.AdvertiseAddr != "" {
		if adv := v.resolve("advertise_addr", &c.AdvertiseAddr); adv.IsValid() && adv.IsUnspecified() {
			v.fail("advertise_addr", true, "Invalid advertise_addr", fmt.Sprintf(
				"advertise_addr must be an address other nodes can reach, not %s.", adv))
		}
		return bind, client
	}
	switch {
	case !bind.IsValid():
		// Already reported; nothing to derive from.
	case !bind.IsUnspecified():
		c.AdvertiseAddr = c.BindAddr
	default:
		adv, err := resolveAddr(privateIPTemplate)
		if err != nil {
			v.fail("bind_addr", true, "No address to advertise", fmt.Sprintf(
				"bind_addr is %s, so this agent advertises its private IP, but %s found none (%v); set advertise_addr.",
				c.BindAddr, privateIPTemplate, err))
			break
		}
		c.AdvertiseAddr = adv.String()
	}
	return bind, client
}

// resolve resolves the address in *s, stores it back as a plain IP and
// returns it; on failure it records an error and returns the zero Addr.
func (v *validator) resolve(key string, s *string) netip.Addr {
	addr, err := resolveAddr(*s)
	if err != nil {
		v.fail(key, true, "Invalid "+key, fmt.Sprintf("%s %v.", key, err))
		return netip.Addr{}
	}
	*s = addr.String()
	return addr
}

// resolveAddr resolves s, a literal IP address or a go-sockaddr template
// such as "{{ GetPrivateIP }}", to exactly one IP address.
func resolveAddr(s string) (netip.Addr, error) {
	if strings.TrimSpace(s) == "" {
		return netip.Addr{}, errors.New("must not be empty")
	}
	isTemplate := strings.Contains(s, "{{")
	out, err := parseTemplate(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("is not a valid go-sockaddr template: %v", err)
	}
	addrs := strings.Fields(out)
	switch {
	case len(addrs) == 0:
		return netip.Addr{}, fmt.Errorf("template %s resolved to no address", quote(s))
	case len(addrs) > 1:
		return netip.Addr{}, fmt.Errorf("template %s resolved to %d addresses (%s); it must resolve to exactly one",
			quote(s), len(addrs), strings.Join(addrs, ", "))
	}
	addr, err := netip.ParseAddr(addrs[0])
	switch {
	case err != nil && isTemplate:
		return netip.Addr{}, fmt.Errorf("template %s resolved to %s, which is not an IP address", quote(s), quote(addrs[0]))
	case err != nil:
		return netip.Addr{}, fmt.Errorf("%s is not an IP address", quote(s))
	}
	return addr, nil
}

// parseTemplate runs a go-sockaddr template, turning a panic into an error.
func parseTemplate(s string) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(panicDetail(r))
		}
	}()
	return template.Parse(s)
}

// checkPorts checks the port ranges, then that no two listeners share a
// port on overlapping addresses. Port 0 asks the OS for a free port and
// never collides; -1 turns the HTTP or HTTPS listener off.
func (v *validator) checkPorts(bind, client netip.Addr) {
	c := v.c
	type listener struct {
		key     string
		port    int
		addrKey string
		addr    netip.Addr
	}
	listeners := []listener{
		{"ports.http", c.Ports.HTTP, "client_addr", client},
		{"ports.https", c.Ports.HTTPS, "client_addr", client},
		{"ports.serf_lan", c.Ports.SerfLAN, "bind_addr", bind},
		{"ports.server", c.Ports.Server, "bind_addr", bind},
	}
	inRange := true
	for _, l := range listeners {
		canBeOff := l.key == "ports.http" || l.key == "ports.https"
		switch {
		case canBeOff && (l.port < -1 || l.port > 65535):
			v.fail(l.key, true, "Invalid "+l.key,
				fmt.Sprintf("%s must be between 0 and 65535, or -1 for off, got %d.", l.key, l.port))
			inRange = false
		case !canBeOff && (l.port < 0 || l.port > 65535):
			v.fail(l.key, true, "Invalid "+l.key,
				fmt.Sprintf("%s must be between 0 and 65535, got %d.", l.key, l.port))
			inRange = false
		}
	}
	if !inRange {
		return
	}
	for i, a := range listeners {
		for _, b := range listeners[i+1:] {
			if a.port <= 0 || a.port != b.port || !a.addr.IsValid() || !b.addr.IsValid() || !overlap(a.addr, b.addr) {
				continue
			}
			detail := fmt.Sprintf("%s and %s both use port %d on %s %s; give each its own port.",
				a.key, b.key, a.port, a.addrKey, a.addr)
			if a.addrKey != b.addrKey {
				detail = fmt.Sprintf("%s (on %s %s) and %s (on %s %s) both use port %d; give each its own port.",
					a.key, a.addrKey, a.addr, b.key, b.addrKey, b.addr, a.port)
			}
			key, _ := v.later(a.key, b.key)
			v.fail(key, true, "Port collision", detail)
		}
	}
}

// overlap reports whether listening on a and b with the same port would
// conflict: the same address, or an unspecified address, which covers every
// address of its family ("::" covers IPv4 as well, since Linux listens
// dual-stack by default).
func overlap(a, b netip.Addr) bool {
	a, b = a.Unmap(), b.Unmap()
	switch {
	case a == b:
		return true
	case a.Is6() && a.IsUnspecified(), b.Is6() && b.IsUnspecified():
		return true
	}
	return (a.IsUnspecified() || b.IsUnspecified()) && a.Is4() == b.Is4()
}
