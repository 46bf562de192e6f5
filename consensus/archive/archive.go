package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// The files of an archive, in the order Write writes them.
const (
	metaFile  = "meta.json"
	stateFile = "state.bin"
	sumsFile  = "SHA256SUMS"
)

const (
	// maxMetaSize bounds meta.json. The metadata is a few hundred bytes
	// plus the Raft configuration, about 100 bytes per server.
	maxMetaSize = 1 << 20

	// maxSumsSize bounds SHA256SUMS, two lines of about 80 bytes.
	maxSumsSize = 4 << 10

	// maxTrailer bounds what may follow the end of the tar archive inside
	// the gzip stream: zero padding, as tar(1) adds up to a whole record.
	maxTrailer = 1 << 20

	// fileMode is the mode of the files Write creates, as Consul's.
	fileMode = 0o600
)

// Errors that Read returns, wrapped with the detail, for the defects it
// finds. Test for them with errors.Is.
var (
	// ErrNotGzip means the input is not a gzip stream, or the stream is
	// damaged: a bad header, a truncated body, or a wrong CRC.
	ErrNotGzip = errors.New("not a gzip-compressed snapshot archive")

	// ErrTruncated means the archive ends before its end: the gzip stream,
	// or the tar archive inside it, stops in the middle.
	ErrTruncated = errors.New("truncated")

	// ErrNotTar means the decompressed stream is not a well-formed tar
	// archive.
	ErrNotTar = errors.New("not a tar archive")

	// ErrMissingFile means the archive lacks meta.json, state.bin or
	// SHA256SUMS.
	ErrMissingFile = errors.New("missing file")

	// ErrUnexpectedFile means the archive holds a file other than those
	// three, one of them twice, or one that is not a regular file.
	ErrUnexpectedFile = errors.New("unexpected file")

	// ErrSize means a file is larger than its bound, or state.bin's size
	// differs from the Size in meta.json.
	ErrSize = errors.New("wrong size")

	// ErrChecksum means a file's SHA-256 differs from its SHA256SUMS line,
	// or SHA256SUMS is malformed or incomplete.
	ErrChecksum = errors.New("checksum mismatch")

	// ErrMeta means meta.json is not the JSON of a snapshot's metadata.
	ErrMeta = errors.New("invalid metadata")
)

// Meta is the snapshot metadata stored as meta.json. It is hashicorp/raft's
// SnapshotMeta, which Consul encodes there as JSON: Version, ID, Index,
// Term, Peers, Configuration, ConfigurationIndex and Size. Size is the
// length of state.bin.
type Meta = raft.SnapshotMeta

// Write writes an archive of meta and state to w: meta.json, then exactly
// meta.Size bytes of state as state.bin, then SHA256SUMS, in a tar stream
// compressed with gzip. It fails if state holds fewer or more than
// meta.Size bytes. On error, w may hold part of an archive.
func Write(w io.Writer, meta Meta, state io.Reader) error {
	if meta.Size < 0 {
		return fmt.Errorf("write snapshot archive: negative state size %d", meta.Size)
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("write snapshot archive: encode %s: %w", metaFile, err)
	}
	// Consul writes meta.json with a json.Encoder, which ends it with a
	// newline; so does this.
	metaJSON = append(metaJSON, '\n')

	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	now := time.Now()
	metaSum := sha256.Sum256(metaJSON)
	if err := writeFile(tw, metaFile, int64(len(metaJSON)), now, bytes.NewReader(metaJSON)); err != nil {
		return err
	}

	stateHash := sha256.New()
	if err := writeFile(tw, stateFile, meta.Size, now, io.TeeReader(state, stateHash)); err != nil {
		return err
	}
	// A state longer than meta.Size would be cut short without a word;
	// the metadata must say what the state is.
	if n, _ := io.ReadFull(state, make([]byte, 1)); n > 0 {
		return fmt.Errorf("write snapshot archive: %s: %w: the state is longer than meta.Size, %d bytes", stateFile, ErrSize, meta.Size)
	}

	sums := fmt.Sprintf("%x  %s\n%x  %s\n", metaSum, metaFile, stateHash.Sum(nil), stateFile)
	if err := writeFile(tw, sumsFile, int64(len(sums)), now, strings.NewReader(sums)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write snapshot archive: finish tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("write snapshot archive: finish gzip: %w", err)
	}
	return nil
}

// writeFile writes one file of size bytes, read from r, to tw.
func writeFile(tw *tar.Writer, name string, size int64, modTime time.Time, r io.Reader) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     fileMode,
		Size:     size,
		// Left to the tar package, the format is USTAR, with ModTime
		// rounded to the second, as in Consul's archives.
		ModTime: modTime,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write snapshot archive: %s header: %w", name, err)
	}
	n, err := io.CopyN(tw, r, size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("write snapshot archive: %s: %w: the state has %d bytes, meta.Size says %d", name, ErrSize, n, size)
	}
	if err != nil {
		return fmt.Errorf("write snapshot archive: %s: %w", name, err)
	}
	return nil
}

// Read reads an archive that Write, or Consul, wrote from r. It copies
// state.bin to stateTo as it reads and returns the metadata once every
// check has passed. Until Read returns nil, what it copied to stateTo is
// unverified and must be discarded: the checksums are at the end.
//
// Each defect is an error that wraps one of ErrNotGzip, ErrTruncated,
// ErrNotTar, ErrMissingFile, ErrUnexpectedFile, ErrSize, ErrChecksum and
// ErrMeta, and names the file concerned. An error of stateTo is returned
// wrapped as it is.
func Read(r io.Reader, stateTo io.Writer) (Meta, error) {
	meta, err := read(r, stateTo)
	if err != nil {
		return Meta{}, fmt.Errorf("read snapshot archive: %w", err)
	}
	return meta, nil
}

func read(r io.Reader, stateTo io.Writer) (Meta, error) {
	var meta Meta
	// gzip reads through br as it is, without a buffer of its own, so that
	// what follows the gzip stream is left in br to be checked.
	br := bufio.NewReader(r)
	gz, err := gzip.NewReader(br)
	if errors.Is(err, io.EOF) {
		return meta, fmt.Errorf("%w: the input is empty", ErrNotGzip)
	}
	if err != nil {
		return meta, fmt.Errorf("%w: %v", ErrNotGzip, err)
	}
	defer gz.Close()
	// One gzip member, as Consul writes; anything after it is a defect.
	gz.Multistream(false)

	var (
		tr        = tar.NewReader(gz)
		seen      = make(map[string]bool)
		metaSum   []byte
		stateSum  []byte
		stateSize int64
		sums      []byte
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return meta, streamError(err)
		}
		if err := checkHeader(seen, hdr); err != nil {
			return meta, err
		}
		switch hdr.Name {
		case metaFile:
			if metaSum, err = readMeta(tr, hdr, &meta); err != nil {
				return meta, err
			}
		case stateFile:
			if seen[metaFile] && hdr.Size != meta.Size {
				return meta, fmt.Errorf("%w: %s is %d bytes, but %s says Size %d", ErrSize, stateFile, hdr.Size, metaFile, meta.Size)
			}
			h := sha256.New()
			if err := copyState(io.MultiWriter(callerWriter{stateTo}, h), tr, hdr.Size); err != nil {
				return meta, err
			}
			stateSum, stateSize = h.Sum(nil), hdr.Size
		case sumsFile:
			if sums, err = readSmall(tr, hdr, maxSumsSize); err != nil {
				return meta, err
			}
		default:
			return meta, fmt.Errorf("%w: %q", ErrUnexpectedFile, hdr.Name)
		}
	}
	if err := checkParts(seen, meta.Size, stateSize, sums, map[string][]byte{metaFile: metaSum, stateFile: stateSum}); err != nil {
		return meta, err
	}
	if err := finishGzip(gz); err != nil {
		return meta, err
	}
	if _, err := br.ReadByte(); err == nil {
		return meta, fmt.Errorf("%w: data after the end of the gzip stream", ErrNotGzip)
	}
	return meta, nil
}

// checkHeader refuses a file that appeared before or is not a regular
// file, and marks it seen.
func checkHeader(seen map[string]bool, hdr *tar.Header) error {
	if seen[hdr.Name] {
		return fmt.Errorf("%w: %q appears twice", ErrUnexpectedFile, hdr.Name)
	}
	seen[hdr.Name] = true
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("%w: %q is not a regular file (tar type %q)", ErrUnexpectedFile, hdr.Name, hdr.Typeflag)
	}
	return nil
}

// checkParts checks, once every file is read, that none is missing, that
// the state has the meta's size, and the SHA256SUMS file against got.
func checkParts(seen map[string]bool, metaSize, stateSize int64, sums []byte, got map[string][]byte) error {
	for _, name := range []string{metaFile, stateFile, sumsFile} {
		if !seen[name] {
			return fmt.Errorf("%w: %s", ErrMissingFile, name)
		}
	}
	if stateSize != metaSize {
		return fmt.Errorf("%w: %s is %d bytes, but %s says Size %d", ErrSize, stateFile, stateSize, metaFile, metaSize)
	}
	return verifySums(sums, got)
}

// readMeta reads the meta file into meta and returns its SHA-256.
func readMeta(tr *tar.Reader, hdr *tar.Header, meta *Meta) ([]byte, error) {
	b, err := readSmall(tr, hdr, maxMetaSize)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if err := json.Unmarshal(b, meta); err != nil {
		return sum[:], fmt.Errorf("%w: %s: %v", ErrMeta, metaFile, err)
	}
	if meta.Size < 0 {
		return sum[:], fmt.Errorf("%w: %s: negative Size %d", ErrMeta, metaFile, meta.Size)
	}
	return sum[:], nil
}

// readSmall reads the file hdr describes, refusing one larger than max.
func readSmall(tr *tar.Reader, hdr *tar.Header, max int64) ([]byte, error) {
	if hdr.Size > max {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d it may have", ErrSize, hdr.Name, hdr.Size, max)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", hdr.Name, streamError(err))
	}
	return b, nil
}

// copyState copies state.bin, size bytes, from tr to w.
func copyState(w io.Writer, tr *tar.Reader, size int64) error {
	// tr stops at the end of the file; a stream that ends before it is
	// io.ErrUnexpectedEOF from tar or gzip.
	n, err := io.Copy(w, tr)
	switch {
	case err != nil && isWriteError(err):
		return fmt.Errorf("copy %s: %w", stateFile, err)
	case err != nil:
		return fmt.Errorf("%s: %w", stateFile, streamError(err))
	case n != size:
		return fmt.Errorf("%w: %s: read %d bytes, the header says %d", ErrSize, stateFile, n, size)
	}
	return nil
}

// writeError marks an error of the caller's writer, so that it is not
// taken for a defect of the archive.
type writeError struct{ err error }

// callerWriter marks the errors of w as writeErrors.
type callerWriter struct{ w io.Writer }

func (c callerWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

func isWriteError(err error) bool {
	var we writeError
	return errors.As(err, &we)
}

// verifySums checks the SHA256SUMS content against the sums computed while
// reading: every line must be well formed, name a known file once, and
// match; and every file must have a line.
func verifySums(content []byte, want map[string][]byte) error {
	found := make(map[string]bool)
	sc := bufio.NewScanner(bytes.NewReader(content))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		hexSum, name, ok := strings.Cut(text, "  ")
		sum, err := hex.DecodeString(hexSum)
		if !ok || err != nil || len(sum) != sha256.Size {
			return fmt.Errorf("%w: %s line %d is not \"<sha256>  <file>\": %q", ErrChecksum, sumsFile, line, truncate(text))
		}
		w, known := want[name]
		switch {
		case !known:
			return fmt.Errorf("%w: %s line %d names %q, which is not in the archive", ErrChecksum, sumsFile, line, truncate(name))
		case found[name]:
			return fmt.Errorf("%w: %s lists %s twice", ErrChecksum, sumsFile, name)
		case !bytes.Equal(sum, w):
			return fmt.Errorf("%w: %s", ErrChecksum, name)
		}
		found[name] = true
	}
	for _, name := range []string{metaFile, stateFile} {
		if !found[name] {
			return fmt.Errorf("%w: %s has no line for %s", ErrChecksum, sumsFile, name)
		}
	}
	return nil
}

// finishGzip reads what follows the tar archive to the end of the gzip
// stream, which is when gzip checks its CRC and length. Only zero padding
// may follow, and only so much of it.
func finishGzip(gz *gzip.Reader) error {
	n, err := io.Copy(zeroWriter{}, io.LimitReader(gz, maxTrailer+1))
	switch {
	case errors.Is(err, errNotZero):
		return fmt.Errorf("%w: data after the end of the tar archive", ErrUnexpectedFile)
	case err != nil:
		return streamError(err)
	case n > maxTrailer:
		return fmt.Errorf("%w: more than %d bytes of padding after the tar archive", ErrSize, maxTrailer)
	}
	return nil
}

var errNotZero = errors.New("non-zero byte")

// zeroWriter accepts only zero bytes.
type zeroWriter struct{}

func (zeroWriter) Write(p []byte) (int, error) {
	for i, b := range p {
		if b != 0 {
			return i, errNotZero
		}
	}
	return len(p), nil
}

// streamError classifies an error from reading the tar stream: a damaged
// gzip stream, or a damaged tar archive inside a sound one.
func streamError(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: the archive ends early", ErrTruncated)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("%w: %v", ErrNotGzip, err)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong), errors.Is(err, tar.ErrInsecurePath):
		return fmt.Errorf("%w: %v", ErrNotTar, err)
	}
	return fmt.Errorf("%w: %v", ErrNotTar, err)
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
