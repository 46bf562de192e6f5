package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"
)

type fakeReloader struct{ err error }

func (r fakeReloader) Reload() error { return r.err }

func TestAgentReload(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		wantCode int
		wantBody string
	}{
		{"reloaded", nil, http.StatusOK, "null\n"},
		{"failed", errors.New("tls.https: read certificate: open /x.pem: no such file or directory"),
			http.StatusInternalServerError, "Reload failed: tls.https: read certificate: open /x.pem: no such file or directory\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Logger: hclog.NewNullLogger(), Reloader: fakeReloader{tc.err}})
			rec := httptest.NewRecorder()
			s.Public().ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/v1/agent/reload", nil))
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
				t.Errorf("PUT /v1/agent/reload = %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
		})
	}
}
