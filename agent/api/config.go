package api

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// The environment variables a Config falls back to, in the order they are
// tried: Conclave's own first, then Consul's, so that scripts written for
// Consul's CLI work unchanged.
const (
	// HTTPTokenEnv and ConsulHTTPTokenEnv hold a token to send with every
	// request.
	HTTPTokenEnv       = "CONCLAVE_HTTP_TOKEN"
	ConsulHTTPTokenEnv = "CONSUL_HTTP_TOKEN"

	// HTTPTokenFileEnv and ConsulHTTPTokenFileEnv name a file that holds
	// the token.
	HTTPTokenFileEnv       = "CONCLAVE_HTTP_TOKEN_FILE"
	ConsulHTTPTokenFileEnv = "CONSUL_HTTP_TOKEN_FILE"

	// ConsulHTTPAddrEnv is Consul's name for HTTPAddrEnv, read when
	// HTTPAddrEnv is unset.
	ConsulHTTPAddrEnv = "CONSUL_HTTP_ADDR"
)

// TokenHeader is the request header a token travels in, as in Consul.
const TokenHeader = "X-Consul-Token"

// Config says which agent a Client talks to and what it sends with every
// request. An empty field falls back to the environment and then to a
// default, each as its field says.
type Config struct {
	// Address is the agent's HTTP API, as for NewClient. Empty means
	// $CONCLAVE_HTTP_ADDR, else $CONSUL_HTTP_ADDR, else DefaultHTTPAddr.
	Address string

	// Token is sent as the X-Consul-Token header. Empty means the content
	// of TokenFile; when both are empty, $CONCLAVE_HTTP_TOKEN, the file
	// named by $CONCLAVE_HTTP_TOKEN_FILE, $CONSUL_HTTP_TOKEN, or the file
	// named by $CONSUL_HTTP_TOKEN_FILE, the first one set. No token at all
	// sends no header. The agent ignores the token until Conclave has ACLs.
	Token string

	// TokenFile names a file whose content, without surrounding white
	// space, is the token. It is read by NewClientConfig.
	TokenFile string

	// Datacenter, when not empty, is sent as ?dc= with every request, so
	// that an agent of another datacenter refuses the request instead of
	// answering for its own. It has no environment variable, as in Consul.
	Datacenter string
}

// NewClientConfig returns a client built from cfg, with the fall-backs
// Config describes. It reads the token file, if any, now; its errors name
// the file and never include a token.
func NewClientConfig(cfg Config) (*Client, error) {
	c, err := NewClient(cfg.Address)
	if err != nil {
		return nil, err
	}
	if c.token, err = resolveToken(cfg); err != nil {
		return nil, err
	}
	c.datacenter = cfg.Datacenter
	return c, nil
}

// resolveToken returns the token cfg and the environment give, trying the
// sources in the order Config.Token describes.
func resolveToken(cfg Config) (string, error) {
	sources := []struct{ token, file, fileFrom string }{
		{cfg.Token, cfg.TokenFile, "-token-file"},
		{os.Getenv(HTTPTokenEnv), os.Getenv(HTTPTokenFileEnv), HTTPTokenFileEnv},
		{os.Getenv(ConsulHTTPTokenEnv), os.Getenv(ConsulHTTPTokenFileEnv), ConsulHTTPTokenFileEnv},
	}
	for _, s := range sources {
		if s.token != "" {
			return s.token, nil
		}
		if s.file != "" {
			return readTokenFile(s.file, s.fileFrom)
		}
	}
	return "", nil
}

// maxTokenFile bounds what is read of a token file: a token is a UUID, and
// a path pointing at something else must not fill the memory.
const maxTokenFile = 4 << 10

// readTokenFile reads the token in path, named by from (a flag or an
// environment variable) for the errors.
func readTokenFile(path, from string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read token file given by %s: %w", from, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("read token file %s given by %s: %w", path, from, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s given by %s: larger than %d bytes", path, from, maxTokenFile)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s given by %s is empty", path, from)
	}
	return token, nil
}

// firstSet returns the first of values that is not empty, or "".
func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
