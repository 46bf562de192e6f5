package httpapi

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// pageRow is one HTTP row of website/consul-compatibility.md:
// | `METHOD /path` | status | notes |
var pageRow = regexp.MustCompile("^\\| `(GET|PUT|POST|DELETE) (/[^` ]*)` \\| ([a-z ]+) \\|")

// TestCompatibilityPageMatchesRoutes keeps the compatibility page true:
// every row that says works, differs or conclave is a public route, and
// every public route has a row.
func TestCompatibilityPageMatchesRoutes(t *testing.T) {
	data, err := os.ReadFile("../../website/consul-compatibility.md")
	if err != nil {
		t.Fatal(err)
	}
	page := map[string]string{} // "METHOD /path" -> status
	for _, line := range strings.Split(string(data), "\n") {
		if m := pageRow.FindStringSubmatch(line); m != nil {
			page[m[1]+" "+m[2]] = m[3]
		}
	}
	if len(page) < 20 {
		t.Fatalf("found %d HTTP rows in the page, want the whole table", len(page))
	}
	s := New(Config{Logger: hclog.NewNullLogger()})
	routes := map[string]bool{}
	param := regexp.MustCompile(`\{([a-z]+)(\.\.\.)?\}`)
	for _, rt := range s.routes() {
		if rt.on&public == 0 || rt.method == "" {
			continue
		}
		key := rt.method + " " + param.ReplaceAllString(rt.pattern, "<$1>")
		routes[key] = true
		if _, ok := page[key]; !ok {
			t.Errorf("route %s has no row in website/consul-compatibility.md", key)
		}
	}
	for key, status := range page {
		switch status {
		case "works", "differs", "conclave":
			if !routes[key] {
				t.Errorf("website/consul-compatibility.md says %s %s, but there is no such route", key, status)
			}
		case "not supported", "out of scope":
			if routes[key] {
				t.Errorf("website/consul-compatibility.md says %s is %s, but it is a route", key, status)
			}
		default:
			t.Errorf("website/consul-compatibility.md: %s has status %q", key, status)
		}
	}
}
