package consensus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	iradix "github.com/hashicorp/go-immutable-radix"
)

// Snapshot stream format, version 1. Integers are uvarints unless noted.
//
//	header     "CNCLVKV" version(1 byte)
//	meta       applied kvIndex reapThrough reapIndex
//	entry*     0x01 keylen key flags createIndex modifyIndex lockIndex valuelen value
//	tombstone* 0x02 keylen key index
//	end        0x03 entries tombstones crc32c(4 bytes, big-endian)
//
// Entries come in strictly increasing key order, then tombstones likewise.
// The CRC-32C covers every byte before it. Nothing may follow it, so a
// stream cut anywhere, even between records, is an error.
const (
	snapshotMagic   = "CNCLVKV"
	snapshotVersion = 1

	recEntry     = 0x01
	recTombstone = 0x02
	recEnd       = 0x03

	// snapshotBuffer is the bufio size on both sides, and the step in
	// which a long key or value is read.
	snapshotBuffer = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errEmptySnapshot is a stream with no bytes at all.
var errEmptySnapshot = fmt.Errorf("%w: empty stream", ErrCorruptSnapshot)

// SnapshotInfo describes a snapshot stream.
type SnapshotInfo struct {
	// Index is the highest Raft index in the stream: the applied index
	// it was taken at, or any higher CreateIndex, ModifyIndex or tombstone.
	Index uint64
	// Entries and Tombstones count the records.
	Entries, Tombstones int
	// Size is the length of the stream in bytes.
	Size int64
}

// InspectSnapshot reads a whole snapshot stream, checks it as Restore
// would (format, order, counts, checksum, nothing after the end) without
// keeping its contents, and describes it.
func InspectSnapshot(r io.Reader) (SnapshotInfo, error) {
	_, info, err := readSnapshot(r, false)
	return info, err
}

// hashWriter counts and checksums what goes through it to w.
type hashWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (h *hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.crc = crc32.Update(h.crc, castagnoli, p[:n])
	h.n += int64(n)
	return n, err
}

func writeSnapshot(w io.Writer, s *state) (SnapshotInfo, error) {
	info := SnapshotInfo{Index: max(s.applied, s.kvIndex, s.reapIndex)}
	hw := &hashWriter{w: w}
	bw := bufio.NewWriterSize(hw, snapshotBuffer)
	rec := make([]byte, 0, 128)

	rec = append(rec, snapshotMagic...)
	rec = append(rec, snapshotVersion)
	for _, v := range []uint64{s.applied, s.kvIndex, s.reapThrough, s.reapIndex} {
		rec = binary.AppendUvarint(rec, v)
	}
	if _, err := bw.Write(rec); err != nil {
		return info, err
	}

	it := s.kv.Root().Iterator()
	for _, raw, ok := it.Next(); ok; _, raw, ok = it.Next() {
		e := raw.(*Entry)
		rec = append(rec[:0], recEntry)
		rec = appendString(rec, e.Key)
		for _, v := range []uint64{e.Flags, e.CreateIndex, e.ModifyIndex, e.LockIndex, uint64(len(e.Value))} {
			rec = binary.AppendUvarint(rec, v)
		}
		if _, err := bw.Write(rec); err != nil {
			return info, err
		}
		if _, err := bw.Write(e.Value); err != nil {
			return info, err
		}
		info.Entries++
		info.Index = max(info.Index, e.CreateIndex, e.ModifyIndex)
	}
	it = s.tombs.Root().Iterator()
	for k, raw, ok := it.Next(); ok; k, raw, ok = it.Next() {
		rec = append(rec[:0], recTombstone)
		rec = binary.AppendUvarint(rec, uint64(len(k)))
		rec = append(rec, k...)
		rec = binary.AppendUvarint(rec, raw.(uint64))
		if _, err := bw.Write(rec); err != nil {
			return info, err
		}
		info.Tombstones++
		info.Index = max(info.Index, raw.(uint64))
	}
	rec = append(rec[:0], recEnd)
	rec = binary.AppendUvarint(rec, uint64(info.Entries))
	rec = binary.AppendUvarint(rec, uint64(info.Tombstones))
	if _, err := bw.Write(rec); err != nil {
		return info, err
	}
	if err := bw.Flush(); err != nil {
		return info, err
	}
	// The checksum goes straight to w: it is not part of what it covers.
	sum := binary.BigEndian.AppendUint32(nil, hw.crc)
	if _, err := w.Write(sum); err != nil {
		return info, err
	}
	info.Size = hw.n + int64(len(sum))
	return info, nil
}

// snapReader reads the stream through a buffer, counting and checksumming
// every byte it hands out (bufio reads ahead, so the checksum cannot be
// taken below it).
type snapReader struct {
	r     *bufio.Reader
	crc   uint32
	n     int64
	ioErr error // the last error of the underlying reader other than EOF
}

// ReadByte makes snapReader an io.ByteReader for binary.ReadUvarint.
func (r *snapReader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err != nil {
		if err != io.EOF {
			r.ioErr = err
		}
		return 0, err
	}
	r.crc = crc32.Update(r.crc, castagnoli, []byte{b})
	r.n++
	return b, nil
}

func (r *snapReader) uvarint(what string) (uint64, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, r.fail(what, err)
	}
	return v, nil
}

// bytes reads n bytes. The buffer grows as data arrives, a step at a time,
// so a corrupt length costs at most about twice the bytes the stream really
// holds, never the length it claims.
func (r *snapReader) bytes(what string, n uint64) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if n > math.MaxInt {
		return nil, fmt.Errorf("%w: %s of %d bytes", ErrCorruptSnapshot, what, n)
	}
	size := int(n)
	buf := make([]byte, 0, min(size, snapshotBuffer))
	for len(buf) < size {
		step := min(size-len(buf), snapshotBuffer)
		if len(buf)+step > cap(buf) {
			nb := make([]byte, len(buf), min(size, max(2*cap(buf), len(buf)+step)))
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r.r, buf[len(buf):len(buf)+step])
		r.crc = crc32.Update(r.crc, castagnoli, buf[len(buf):len(buf)+m])
		r.n += int64(m)
		buf = buf[:len(buf)+m]
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				r.ioErr = err
			}
			return nil, r.fail(what, err)
		}
	}
	return buf, nil
}

// fail turns a read error into what Restore reports: the source's own
// error, or ErrCorruptSnapshot (with io.ErrUnexpectedEOF when the stream
// ends early).
func (r *snapReader) fail(what string, err error) error {
	switch {
	case r.ioErr != nil:
		return fmt.Errorf("read snapshot %s: %w", what, r.ioErr)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: truncated in %s at byte %d: %w", ErrCorruptSnapshot, what, r.n, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %s at byte %d: %v", ErrCorruptSnapshot, what, r.n, err)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

// readSnapshot reads and checks a snapshot stream. With build it also
// returns the state the stream holds; without, it keeps nothing, so a
// stream of any size is checked in bounded memory.
func readSnapshot(src io.Reader, build bool) (*state, SnapshotInfo, error) {
	var info SnapshotInfo
	r := &snapReader{r: bufio.NewReaderSize(src, snapshotBuffer)}
	if _, err := r.r.Peek(1); err == io.EOF {
		return nil, info, errEmptySnapshot
	}
	hdr, err := r.bytes("header", uint64(len(snapshotMagic)+1))
	if err != nil {
		return nil, info, err
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return nil, info, corrupt("not a conclave key/value snapshot")
	}
	if v := hdr[len(snapshotMagic)]; v != snapshotVersion {
		return nil, info, corrupt("unsupported snapshot version %d", v)
	}
	s := &state{}
	for _, p := range []*uint64{&s.applied, &s.kvIndex, &s.reapThrough, &s.reapIndex} {
		if *p, err = r.uvarint("header"); err != nil {
			return nil, info, err
		}
	}
	info.Index = max(s.applied, s.kvIndex, s.reapIndex)

	var kv, tombs *iradix.Txn
	if build {
		kv, tombs = iradix.New().Txn(), iradix.New().Txn()
	}
	var prev []byte
	inTombs := false
	for {
		tag, err := r.ReadByte()
		if err != nil {
			return nil, info, r.fail("record tag", err)
		}
		switch tag {
		case recEntry:
			if inTombs {
				return nil, info, corrupt("entry after tombstones")
			}
			e, key, err := r.entry()
			if err != nil {
				return nil, info, err
			}
			if prev != nil && bytes.Compare(key, prev) <= 0 {
				return nil, info, corrupt("entry %q out of order", key)
			}
			prev = key
			info.Entries++
			info.Index = max(info.Index, e.CreateIndex, e.ModifyIndex)
			if build {
				kv.Insert(key, e)
			}
		case recTombstone:
			if !inTombs {
				inTombs, prev = true, nil
			}
			n, err := r.uvarint("tombstone key length")
			if err != nil {
				return nil, info, err
			}
			key, err := r.bytes("tombstone key", n)
			if err != nil {
				return nil, info, err
			}
			idx, err := r.uvarint("tombstone index")
			if err != nil {
				return nil, info, err
			}
			if prev != nil && bytes.Compare(key, prev) <= 0 {
				return nil, info, corrupt("tombstone %q out of order", key)
			}
			if key == nil {
				key = []byte{}
			}
			prev = key
			info.Tombstones++
			info.Index = max(info.Index, idx)
			if build {
				tombs.Insert(key, idx)
			}
		case recEnd:
			if err := r.end(&info); err != nil {
				return nil, info, err
			}
			if !build {
				return nil, info, nil
			}
			s.kv, s.tombs = kv.Commit(), tombs.Commit()
			return s, info, nil
		default:
			return nil, info, corrupt("unknown record type %d at byte %d", tag, r.n-1)
		}
	}
}

func (r *snapReader) entry() (*Entry, []byte, error) {
	n, err := r.uvarint("entry key length")
	if err != nil {
		return nil, nil, err
	}
	key, err := r.bytes("entry key", n)
	if err != nil {
		return nil, nil, err
	}
	if key == nil {
		key = []byte{}
	}
	e := &Entry{Key: string(key)}
	for _, p := range []*uint64{&e.Flags, &e.CreateIndex, &e.ModifyIndex, &e.LockIndex} {
		if *p, err = r.uvarint("entry " + e.Key); err != nil {
			return nil, nil, err
		}
	}
	n, err = r.uvarint("entry " + e.Key)
	if err != nil {
		return nil, nil, err
	}
	if e.Value, err = r.bytes("value of "+e.Key, n); err != nil {
		return nil, nil, err
	}
	return e, key, nil
}

// end reads the end record, checks the counts and the checksum, and that
// the stream ends there.
func (r *snapReader) end(info *SnapshotInfo) error {
	entries, err := r.uvarint("end record")
	if err != nil {
		return err
	}
	tombs, err := r.uvarint("end record")
	if err != nil {
		return err
	}
	if entries != uint64(info.Entries) || tombs != uint64(info.Tombstones) {
		return corrupt("end record counts %d entries and %d tombstones, stream holds %d and %d",
			entries, tombs, info.Entries, info.Tombstones)
	}
	want := r.crc
	var sum [4]byte
	if _, err := io.ReadFull(r.r, sum[:]); err != nil {
		return r.fail("checksum", err)
	}
	r.n += 4
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return corrupt("checksum %08x, computed %08x", got, want)
	}
	switch _, err := r.r.ReadByte(); {
	case err == nil:
		return corrupt("data after the end record")
	case err != io.EOF:
		return fmt.Errorf("read snapshot: %w", err)
	}
	info.Size = r.n
	return nil
}
