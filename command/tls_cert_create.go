package command

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/hashicorp/cli"

	"github.com/conclavehq/conclave/agent/tlsutil"
)

// TLSCertCreateCommand is "conclave tls cert create": it writes a server
// or client certificate signed by the CA of "tls ca create".
type TLSCertCreateCommand struct {
	// Ui receives the names of the files used and written, and the errors.
	Ui cli.Ui
}

const tlsCertCreateHelp = `
Usage: conclave tls cert create -server|-client [options]

  Makes a certificate for a server or a client agent, signed by the CA
  that "conclave tls ca create" made, as "consul tls cert create" does. It
  is written to <dc>-<server|client>-<domain>-<n>.pem with its key in
  <dc>-<server|client>-<domain>-<n>-key.pem (mode 0600), in the current
  directory, with n the first number whose files do not exist yet:
  dc1-server-conclave-0.pem, then dc1-server-conclave-1.pem.

  A server certificate is for server.<dc>.<domain>, localhost and
  127.0.0.1, which tls.internal_rpc.verify_server_hostname checks; a
  client certificate is for client.<dc>.<domain>, localhost and
  127.0.0.1. Both serve for server and client authentication.

Options:

  -additional-dnsname=<name>
     Another DNS name of the certificate. Repeatable.

  -additional-ipaddress=<ip>
     Another IP address of the certificate. Repeatable.

  -ca=<path>
     The CA certificate. Default: <domain>-agent-ca.pem.

  -client
     Make a client agent certificate.

  -days=<n>
     How long the certificate is valid, in days. Default: 365.

  -dc=<name>
     The datacenter of the agent. Default: dc1.

  -domain=<domain>
     The domain of the names. Default: conclave.

  -key=<path>
     The CA key. Default: <domain>-agent-ca-key.pem.

  -server
     Make a server certificate.
`

// Help returns the usage text of the tls cert create command.
func (c *TLSCertCreateCommand) Help() string {
	return strings.TrimSpace(tlsCertCreateHelp)
}

// Synopsis returns a one-line description of the tls cert create command.
func (c *TLSCertCreateCommand) Synopsis() string {
	return "Makes a server or client certificate"
}

// maxCertNumber bounds the search for free file names, as in Consul.
const maxCertNumber = 10000

// serverCertWarning is Consul's warning, shown before a server certificate
// is made.
const serverCertWarning = `==> WARNING: Server Certificates grants authority to become a
    server and access all state in the cluster including root keys
    and all ACL tokens. Do not distribute them to production hosts
    that are not server nodes. Store them as securely as CA keys.`

// Run makes the certificate and returns the exit code.
func (c *TLSCertCreateCommand) Run(args []string) int {
	var (
		server, client         bool
		dc, domain, ca, caKey  string
		days                   int
		dnsNames, ipAddrsFlags pathList
	)
	fs := newFlagSet(c.Ui, "tls cert create", c.Help())
	fs.BoolVar(&server, "server", false, "")
	fs.BoolVar(&client, "client", false, "")
	fs.StringVar(&dc, "dc", "dc1", "")
	fs.StringVar(&domain, "domain", tlsutil.Domain, "")
	fs.IntVar(&days, "days", 365, "")
	fs.StringVar(&ca, "ca", "", "")
	fs.StringVar(&caKey, "key", "", "")
	fs.Var(&dnsNames, "additional-dnsname", "")
	fs.Var(&ipAddrsFlags, "additional-ipaddress", "")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	var ips []net.IP
	for _, s := range ipAddrsFlags {
		ip := net.ParseIP(s)
		if ip == nil {
			c.Ui.Error(fmt.Sprintf("Invalid -additional-ipaddress %q: not an IP address", s))
			return 1
		}
		ips = append(ips, ip)
	}
	switch {
	case fs.NArg() > 0:
		c.Ui.Error("This command takes no arguments")
		return 1
	case server == client:
		c.Ui.Error("Please provide either -server or -client")
		return 1
	case days <= 0:
		c.Ui.Error("Invalid -days: must be at least 1")
		return 1
	case dc == "" || domain == "":
		c.Ui.Error("Invalid -dc or -domain: must not be empty")
		return 1
	}
	if ca == "" {
		ca = domain + "-agent-ca.pem"
	}
	if caKey == "" {
		caKey = domain + "-agent-ca-key.pem"
	}

	return c.create(certRequest{
		server: server, dc: dc, domain: domain, ca: ca, caKey: caKey,
		days: days, dnsNames: dnsNames, ips: ips,
	})
}

// freeCertNames returns the first prefix-<n>.pem and prefix-<n>-key.pem
// that both do not exist.
func freeCertNames(prefix string) (certFile, keyFile string, err error) {
	for i := 0; i <= maxCertNumber; i++ {
		certFile, keyFile = fmt.Sprintf("%s-%d.pem", prefix, i), fmt.Sprintf("%s-%d-key.pem", prefix, i)
		if checkAbsent(certFile, keyFile) == nil {
			return certFile, keyFile, nil
		}
	}
	return "", "", fmt.Errorf("no free file name: %s-0.pem to %s-%d.pem all exist", prefix, prefix, maxCertNumber)
}

// certRequest is a checked tls cert create command line.
type certRequest struct {
	server     bool
	dc, domain string
	ca, caKey  string
	days       int
	dnsNames   []string
	ips        []net.IP
}

// create signs the certificate r asks for with the CA and writes it and
// its key to new files.
func (c *TLSCertCreateCommand) create(r certRequest) int {
	kind := "client"
	if r.server {
		kind = "server"
	}
	name := kind + "." + r.dc + "." + r.domain
	certFile, keyFile, err := freeCertNames(r.dc + "-" + kind + "-" + r.domain)
	if err != nil {
		c.Ui.Error("Error creating certificate: " + err.Error())
		return 1
	}
	caPEM, err := os.ReadFile(r.ca)
	if err != nil {
		c.Ui.Error("Error reading CA certificate: " + err.Error())
		return 1
	}
	caKeyPEM, err := os.ReadFile(r.caKey)
	if err != nil {
		c.Ui.Error("Error reading CA key: " + err.Error())
		return 1
	}
	certPEM, keyPEM, err := tlsutil.GenerateCert(tlsutil.CertOptions{
		CACert:      caPEM,
		CAKey:       caKeyPEM,
		Name:        name,
		DNSNames:    append([]string{"localhost"}, r.dnsNames...),
		IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1)}, r.ips...),
		Days:        r.days,
	})
	if err != nil {
		c.Ui.Error("Error creating certificate: " + err.Error())
		return 1
	}

	if r.server {
		c.Ui.Output(serverCertWarning)
	}
	c.Ui.Output("==> Using " + r.ca + " and " + r.caKey)
	if err := writeNew(keyFile, keyPEM, keyFileMode); err != nil {
		c.Ui.Error("Error saving key: " + err.Error())
		return 1
	}
	if err := writeNew(certFile, certPEM, certFileMode); err != nil {
		c.Ui.Error("Error saving certificate: " + err.Error())
		return 1
	}
	c.Ui.Output("==> Saved " + certFile)
	c.Ui.Output("==> Saved " + keyFile)
	return 0
}
