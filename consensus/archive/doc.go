// Package archive writes and reads snapshots in the archive format of
// Consul's snapshot package, the one "consul snapshot save", "restore" and
// "inspect" use: a gzip-compressed tar file holding, in this order,
//
//	meta.json   the Raft snapshot metadata, hashicorp/raft's SnapshotMeta as JSON
//	state.bin   the state machine's snapshot, exactly meta.Size bytes
//	SHA256SUMS  "<hex sha256>  <name>" lines for meta.json and state.bin,
//	            as sha256sum(1) writes them
//
// Write produces that stream from the metadata and the state. Read checks
// every part of it: the gzip stream and its checksum, the names, types and
// sizes of the files, the size meta.json announces, and the SHA256SUMS
// lines. It streams state.bin to the caller and keeps only meta.json and
// SHA256SUMS in memory, each bounded, so that an archive of any size is read
// in constant memory and a hostile one cannot make it allocate more.
//
// The archive is what "consul snapshot save" stores and "consul snapshot
// restore" and "inspect" accept. A server takes a Raft snapshot, passes its
// metadata (hashicorp/raft's SnapshotMeta, which Meta is) and its reader to
// Write, and streams the result to the client. A restore does the reverse:
// Read into a temporary file, and hand the file and the Meta to Raft only
// once Read has returned without error, since the checksums come last.
package archive
