package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// defaultRaftLogStore is the raft_logstore block of Default().
var defaultRaftLogStore = RaftLogStore{
	Verification: LogVerification{Interval: DefaultLogVerificationInterval},
	WAL:          WALStore{SegmentSizeMB: DefaultWALSegmentSizeMB},
}

func TestLoadRaftLogStore(t *testing.T) {
	inTempDir(t)
	writeFiles(t, map[string]string{
		"a.hcl":  "raft_logstore {\n  backend = \"wal\"\n  verification {\n    enabled = true\n  }\n}\n",
		"b.json": `{"raft_logstore": {"verification": {"interval": "5s"}, "wal": {"segment_size_mb": 2}}}`,
	})
	res := mustLoad(t, nil, "a.hcl", "b.json")
	want := RaftLogStore{
		Backend:      "wal",
		Verification: LogVerification{Enabled: true, Interval: 5 * time.Second},
		WAL:          WALStore{SegmentSizeMB: 2},
	}
	if diff := cmp.Diff(want, res.Config.RaftLogStore); diff != "" {
		t.Errorf("Load() raft_logstore mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadRaftLogStoreErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{
			name: "unknown backend",
			file: "raft_logstore {\n  backend = \"rocksdb\"\n}\n",
			want: `s.hcl:2:13: Invalid raft_logstore.backend; raft_logstore.backend must be "wal" or "boltdb", got "rocksdb".`,
		},
		{
			name: "backend in capitals",
			file: "raft_logstore {\n  backend = \"WAL\"\n}\n",
			want: `s.hcl:2:13: Invalid raft_logstore.backend; raft_logstore.backend must be "wal" or "boltdb", got "WAL".`,
		},
		{
			name: "bad interval",
			file: "raft_logstore {\n  verification {\n    interval = \"often\"\n  }\n}\n",
			want: `s.hcl:3:16: Invalid raft_logstore.verification.interval; raft_logstore.verification.interval must be a duration such as "60s", got "often".`,
		},
		{
			name: "zero interval",
			file: "raft_logstore {\n  verification {\n    interval = \"0s\"\n  }\n}\n",
			want: `s.hcl:3:16: Invalid raft_logstore.verification.interval; raft_logstore.verification.interval must be positive, got 0s.`,
		},
		{
			name: "segment too large",
			file: "raft_logstore {\n  wal {\n    segment_size_mb = 4096\n  }\n}\n",
			want: `s.hcl:3:23: Invalid raft_logstore.wal.segment_size_mb; raft_logstore.wal.segment_size_mb must be between 1 and 1024, got 4096.`,
		},
		{
			name: "unknown key",
			file: "raft_logstore {\n  backed = \"wal\"\n}\n",
			want: `s.hcl:2:3: Unsupported argument; An argument named "backed" is not expected here. Did you mean "backend"?`,
		},
		{
			name: "enabled not a bool",
			file: "raft_logstore {\n  verification {\n    enabled = \"maybe\"\n  }\n}\n",
			want: `s.hcl:3:15: Incorrect attribute value type; Inappropriate value for attribute "raft_logstore.verification.enabled": a bool is required.`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inTempDir(t)
			writeFiles(t, map[string]string{"s.hcl": tc.file})
			_, err := Load(LoadOptions{Paths: []string{"s.hcl"}})
			if err == nil {
				t.Fatalf("Load() = nil error, want %q", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Load() error:\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}
