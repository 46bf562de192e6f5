// Package tlsutil builds the *tls.Config of the agent's TLS listeners and
// connections from certificate, key and CA files, and makes development
// certificates.
//
// # Lifecycle
//
// The agent makes one Configurator per listener with New: one from
// config.TLS.InternalRPC for the server port, one from config.TLS.HTTPS for
// the HTTPS listener. New reads the files and fails if any is missing or
// does not parse. Then:
//
//   - IncomingConfig is the config of a listener: it presents the
//     certificate and, with VerifyIncoming, requires a client certificate
//     signed by the CA (mutual TLS).
//   - OutgoingConfig is the config of a connection to a server's port:
//     with VerifyOutgoing it verifies the server against the CA, and with
//     VerifyServerHostname it requires server.<datacenter>.conclave.
//   - IsServer tells, once a handshake is done, whether the peer presented
//     a server certificate of this datacenter, so that a client agent's
//     certificate cannot act as a server.
//   - Reload reads the files again, on SIGHUP or PUT /v1/agent/reload.
//     The configs read the current material at each handshake (through
//     GetCertificate, GetClientCertificate and VerifyConnection), so
//     the next connection uses the new files and open connections are left
//     alone. A failed Reload keeps the previous material.
//
// The material is immutable and held behind an atomic pointer, so a
// handshake never waits on a Reload.
//
// # Certificates
//
// GenerateCA and GenerateCert make ECDSA P-256 certificates with the
// standard library, with the names Consul's "consul tls" gives, in
// Conclave's domain: a server certificate is for server.<dc>.conclave and
// localhost, a client's for client.<dc>.conclave. "conclave tls ca create"
// and "conclave tls cert create" use them.
package tlsutil
