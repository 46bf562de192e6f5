package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
)

// testMeta returns the metadata of a snapshot of a three-server cluster
// whose state is size bytes.
func testMeta(size int64) Meta {
	return Meta{
		Version: 1,
		ID:      "2-1234-1700000000000",
		Index:   1234,
		Term:    2,
		Peers:   []byte{0x01, 0x02},
		Configuration: raft.Configuration{Servers: []raft.Server{
			{Suffrage: raft.Voter, ID: "a1", Address: "10.0.0.1:8300"},
			{Suffrage: raft.Voter, ID: "b2", Address: "10.0.0.2:8300"},
			{Suffrage: raft.Nonvoter, ID: "c3", Address: "10.0.0.3:8300"},
		}},
		ConfigurationIndex: 17,
		Size:               size,
	}
}

// testState returns n bytes that do not compress to nothing.
func testState(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(16))
	}
	return b
}

// mustWrite returns the archive Write makes of meta and state.
func mustWrite(t testing.TB, meta Meta, state []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, meta, bytes.NewReader(state)); err != nil {
		t.Fatalf("Write() error = %v", err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 100 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			state := testState(size)
			meta := testMeta(int64(size))
			archive := mustWrite(t, meta, state)

			var got bytes.Buffer
			gotMeta, err := Read(bytes.NewReader(archive), &got)
			if err != nil {
				t.Fatalf("Read() error = %v", err)
			}
			if diff := cmp.Diff(meta, gotMeta); diff != "" {
				t.Errorf("Read() meta (-want +got):\n%s", diff)
			}
			if !bytes.Equal(got.Bytes(), state) {
				t.Errorf("Read() state is %d bytes, want the %d written", got.Len(), len(state))
			}
		})
	}
}

// TestConsulFormat checks the archive byte by byte against the format of
// Consul's snapshot package (snapshot/archive.go and snapshot.go), which
// Consul's own reader, snapshot.Read and Verify, requires. No importable
// module holds that reader: github.com/hashicorp/consul/api has no
// snapshot package, and the github.com/hashicorp/consul module is not one
// to import. So this test states the format instead:
//   - a gzip stream whose end follows the end of the tar archive at once
//     (Consul's concludeGzipRead refuses a single byte more);
//   - a tar archive of regular files meta.json, state.bin, SHA256SUMS, in
//     that order, mode 0600;
//   - meta.json: hashicorp/raft's SnapshotMeta as json.Encoder writes it;
//   - state.bin: the state, meta.Size bytes;
//   - SHA256SUMS: "%x  %s\n" for meta.json and state.bin, which Consul
//     parses with fmt.Sscanf("%x  %s").
func TestConsulFormat(t *testing.T) {
	state := testState(10 << 10)
	meta := testMeta(int64(len(state)))
	archive := mustWrite(t, meta, state)

	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("gzip.NewReader() error = %v", err)
	}
	tr := tar.NewReader(gz)
	files := make(map[string][]byte)
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("tar Next() error = %v", err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o600 || hdr.Format != tar.FormatUSTAR {
			t.Errorf("%s: type %q, mode %o, format %v; want a regular file, 0600, USTAR", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Format)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		names = append(names, hdr.Name)
		files[hdr.Name] = b
	}
	if rest, err := io.ReadAll(gz); err != nil || len(rest) != 0 {
		t.Errorf("after the tar archive: %d bytes, error %v; want the gzip stream to end", len(rest), err)
	}
	if diff := cmp.Diff([]string{"meta.json", "state.bin", "SHA256SUMS"}, names); diff != "" {
		t.Fatalf("files (-want +got):\n%s", diff)
	}

	var wantMeta bytes.Buffer
	if err := json.NewEncoder(&wantMeta).Encode(raft.SnapshotMeta(meta)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantMeta.String(), string(files["meta.json"])); diff != "" {
		t.Errorf("meta.json (-want +got):\n%s", diff)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(files["meta.json"], &fields); err != nil {
		t.Fatal(err)
	}
	wantFields := []string{"Configuration", "ConfigurationIndex", "ID", "Index", "Peers", "Size", "Term", "Version"}
	if diff := cmp.Diff(wantFields, slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	})); diff != "" {
		t.Errorf("meta.json fields (-want +got):\n%s", diff)
	}
	if !bytes.Equal(files["state.bin"], state) {
		t.Error("state.bin differs from the state written")
	}

	wantSums := fmt.Sprintf("%x  meta.json\n%x  state.bin\n", sha256.Sum256(files["meta.json"]), sha256.Sum256(state))
	if diff := cmp.Diff(wantSums, string(files["SHA256SUMS"])); diff != "" {
		t.Errorf("SHA256SUMS (-want +got):\n%s", diff)
	}
	// Consul's parser, on each line.
	for _, line := range strings.Split(strings.TrimSuffix(wantSums, "\n"), "\n") {
		sum := make([]byte, sha256.Size)
		var file string
		if _, err := fmt.Sscanf(line, "%x  %s", &sum, &file); err != nil {
			t.Errorf("Sscanf(%q) error = %v", line, err)
		}
	}
}

// entry is one file of a hand-made archive.
type entry struct {
	name string
	typ  byte
	body []byte
}

// build returns a gzip'd tar of entries followed, inside the gzip stream,
// by trailer.
func build(t testing.TB, entries []entry, trailer []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.body))
		if typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: typ, Name: e.name, Mode: 0o600, Size: size}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body[:size]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := gz.Write(trailer); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// parts returns the three files of a sound archive of state.
func parts(t testing.TB, state []byte) (meta, sums []byte) {
	t.Helper()
	meta, err := json.Marshal(testMeta(int64(len(state))))
	if err != nil {
		t.Fatal(err)
	}
	sums = fmt.Appendf(nil, "%x  meta.json\n%x  state.bin\n", sha256.Sum256(meta), sha256.Sum256(state))
	return meta, sums
}

// TestReadConsulVariants reads archives that Consul's writer can produce
// and Write does not: SHA256SUMS in the other order (Consul ranges over a
// map) and tar padding after the archive, as tar(1) writes it.
func TestReadConsulVariants(t *testing.T) {
	state := []byte("state")
	meta, _ := parts(t, state)
	sums := fmt.Appendf(nil, "%x  state.bin\n%x  meta.json\n", sha256.Sum256(state), sha256.Sum256(meta))
	for name, archive := range map[string][]byte{
		"sums reversed": build(t, []entry{{name: "meta.json", body: meta}, {name: "state.bin", body: state}, {name: "SHA256SUMS", body: sums}}, nil),
		"padding":       build(t, []entry{{name: "meta.json", body: meta}, {name: "state.bin", body: state}, {name: "SHA256SUMS", body: sums}}, make([]byte, 9216)),
	} {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if _, err := Read(bytes.NewReader(archive), &got); err != nil {
				t.Fatalf("Read() error = %v", err)
			}
			if got.String() != "state" {
				t.Errorf("Read() state = %q, want %q", got.String(), "state")
			}
		})
	}
}

func TestReadDefects(t *testing.T) {
	state := []byte("the state of the store")
	meta, sums := parts(t, state)
	sound := []entry{{name: "meta.json", body: meta}, {name: "state.bin", body: state}, {name: "SHA256SUMS", body: sums}}
	without := func(name string) []entry {
		return slices.DeleteFunc(slices.Clone(sound), func(e entry) bool { return e.name == name })
	}
	with := func(name string, body []byte) []entry {
		out := slices.Clone(sound)
		for i := range out {
			if out[i].name == name {
				out[i].body = body
			}
		}
		return out
	}
	good := mustWrite(t, testMeta(int64(len(state))), state)
	badCRC := slices.Clone(good)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC-32 in the gzip trailer
	otherMeta, err := json.Marshal(testMeta(int64(len(state)) + 1))
	if err != nil {
		t.Fatal(err)
	}
	otherSums := fmt.Appendf(nil, "%x  meta.json\n%x  state.bin\n", sha256.Sum256(otherMeta), sha256.Sum256(state))

	tests := []struct {
		name    string
		archive []byte
		want    error
		message string
	}{
		{"empty", nil, ErrNotGzip, "not a gzip-compressed snapshot archive: the input is empty"},
		{"plain text", []byte("this is no archive\n"), ErrNotGzip, "gzip: invalid header"},
		{"old conclave snapshot", []byte(`{"Version":1,"Index":3}`), ErrNotGzip, ""},
		{"truncated", good[:len(good)/2], ErrTruncated, "truncated: the archive ends early"},
		{"gzip trailer damaged", badCRC, ErrNotGzip, "gzip: invalid checksum"},
		{"gzip of no tar", gzipOf(t, bytes.Repeat([]byte("not a tar header "), 64)), ErrNotTar, ""},
		{"no meta.json", build(t, without("meta.json"), nil), ErrMissingFile, "missing file: meta.json"},
		{"no state.bin", build(t, without("state.bin"), nil), ErrMissingFile, "missing file: state.bin"},
		{"no SHA256SUMS", build(t, without("SHA256SUMS"), nil), ErrMissingFile, "missing file: SHA256SUMS"},
		{"extra file", build(t, append(slices.Clone(sound), entry{name: "../../etc/passwd", body: []byte("x")}), nil), ErrUnexpectedFile, `unexpected file: "../../etc/passwd"`},
		{"file twice", build(t, append(slices.Clone(sound), sound[1]), nil), ErrUnexpectedFile, `"state.bin" appears twice`},
		{"symlink", build(t, []entry{{name: "state.bin", typ: tar.TypeSymlink}}, nil), ErrUnexpectedFile, `"state.bin" is not a regular file`},
		{"state changed", build(t, with("state.bin", []byte("the state of the st0re")), nil), ErrChecksum, "checksum mismatch: state.bin"},
		{"meta changed", build(t, with("meta.json", bytes.Replace(meta, []byte(`"Term":2`), []byte(`"Term":3`), 1)), nil), ErrChecksum, "checksum mismatch: meta.json"},
		{"sums of another meta.json", build(t, with("SHA256SUMS", otherSums), nil), ErrChecksum, "checksum mismatch: meta.json"},
		{"state size differs from meta, sums agree", build(t, []entry{{name: "meta.json", body: otherMeta}, {name: "state.bin", body: state}, {name: "SHA256SUMS", body: otherSums}}, nil), ErrSize, "state.bin is 22 bytes, but meta.json says Size 23"},
		{"sums line malformed", build(t, with("SHA256SUMS", []byte("abc meta.json\n")), nil), ErrChecksum, `SHA256SUMS line 1 is not "<sha256>  <file>"`},
		{"sums line unknown file", build(t, with("SHA256SUMS", append(slices.Clone(sums), fmt.Appendf(nil, "%x  other\n", sha256.Sum256(nil))...)), nil), ErrChecksum, `SHA256SUMS line 3 names "other"`},
		{"sums lack state.bin", build(t, with("SHA256SUMS", sums[:bytes.IndexByte(sums, '\n')+1]), nil), ErrChecksum, "SHA256SUMS has no line for state.bin"},
		{"sums list a file twice", build(t, with("SHA256SUMS", append(slices.Clone(sums), sums[:bytes.IndexByte(sums, '\n')+1]...)), nil), ErrChecksum, "SHA256SUMS lists meta.json twice"},
		{"meta not JSON", build(t, with("meta.json", []byte("{")), nil), ErrMeta, "invalid metadata: meta.json"},
		{"meta too large", build(t, with("meta.json", bytes.Repeat([]byte(" "), maxMetaSize+1)), nil), ErrSize, "meta.json is 1048577 bytes, more than the 1048576 it may have"},
		{"sums too large", build(t, with("SHA256SUMS", bytes.Repeat([]byte("\n"), maxSumsSize+1)), nil), ErrSize, "SHA256SUMS is 4097 bytes"},
		{"data after the archive", build(t, sound, []byte("\x00\x00junk")), ErrUnexpectedFile, "data after the end of the tar archive"},
		{"garbage after the gzip stream", append(slices.Clone(good), "junk"...), ErrNotGzip, "data after the end of the gzip stream"},
		{"second gzip member", append(slices.Clone(good), good...), ErrNotGzip, "data after the end of the gzip stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.archive), io.Discard)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read() error = %v, want one that wraps %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "read snapshot archive: ") || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Read() error = %q, want it to start with \"read snapshot archive: \" and contain %q", err, tc.message)
			}
		})
	}
}

// gzipOf returns b compressed with gzip.
func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadStateWriterError checks that a failing stateTo is reported as
// such, not as a damaged archive.
func TestReadStateWriterError(t *testing.T) {
	state := testState(1000)
	archive := mustWrite(t, testMeta(int64(len(state))), state)
	diskFull := errors.New("no space left on device")
	_, err := Read(bytes.NewReader(archive), failingWriter{diskFull})
	if !errors.Is(err, diskFull) {
		t.Fatalf("Read() error = %v, want one that wraps %v", err, diskFull)
	}
	for _, defect := range []error{ErrNotGzip, ErrTruncated, ErrNotTar, ErrSize} {
		if errors.Is(err, defect) {
			t.Errorf("Read() error = %v, which wraps %v", err, defect)
		}
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriteSizeMismatch(t *testing.T) {
	tests := []struct {
		name  string
		size  int64
		state string
		want  string
	}{
		{"state shorter", 10, "12345", "the state has 5 bytes, meta.Size says 10"},
		{"state longer", 3, "12345", "the state is longer than meta.Size, 3 bytes"},
		{"negative size", -1, "", "negative state size -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(io.Discard, testMeta(tc.size), strings.NewReader(tc.state))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzRead feeds arbitrary bytes to Read. It must not panic, and what it
// accepts must survive a round trip through Write.
func FuzzRead(f *testing.F) {
	state := []byte("fuzz state")
	meta, sums := parts(f, state)
	f.Add(mustWrite(f, testMeta(int64(len(state))), state))
	f.Add(build(f, []entry{{name: "meta.json", body: meta}, {name: "state.bin", body: state}, {name: "SHA256SUMS", body: sums}}, make([]byte, 1024)))
	f.Add(build(f, []entry{{name: "state.bin", body: state}, {name: "meta.json", body: meta}}, nil))
	f.Add(gzipOf(f, []byte("not a tar")))
	f.Add([]byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, archive []byte) {
		var got bytes.Buffer
		meta, err := Read(bytes.NewReader(archive), &got)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "read snapshot archive: ") {
				t.Fatalf("Read() error = %q, want the prefix", err)
			}
			return
		}
		if int64(got.Len()) != meta.Size {
			t.Fatalf("Read() accepted %d bytes of state with meta.Size %d", got.Len(), meta.Size)
		}
		again := mustWrite(t, meta, got.Bytes())
		var got2 bytes.Buffer
		meta2, err := Read(bytes.NewReader(again), &got2)
		if err != nil {
			t.Fatalf("Read(Write(Read())) error = %v", err)
		}
		if diff := cmp.Diff(meta, meta2); diff != "" || !bytes.Equal(got.Bytes(), got2.Bytes()) {
			t.Fatalf("round trip changed the archive: meta (-first +second):\n%s", diff)
		}
	})
}
