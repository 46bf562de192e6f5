package consensus

import (
	"io"
)

// adoptSnapshot reads a snapshot stream in full into a state store of its
// own, so that a damaged stream fails here and changes nothing, and writes
// that state to w in the current format, with the cluster metadata of the
// cluster that restores it (own, when it has any) in place of the
// stream's.
//
// A user restore replaces the whole state, and a snapshot taken from
// another cluster (a backup restored into a new cluster is the usual way
// back from a lost majority) carries that cluster's ID. Kept as it is, the
// restored store would name another cluster than every server's
// data_dir/cluster-id, and each server would stop rather than serve two
// identities. A cluster never changes its identity, a restore included;
// one that has none yet adopts the snapshot's.
func adoptSnapshot(r io.Reader, w io.Writer, own ClusterMeta, hasOwn bool) (SnapshotInfo, error) {
	aside := NewFSM()
	txn := aside.db.Txn(true)
	defer txn.Abort()
	if info, err := readSnapshot(r, txn); err != nil {
		return info, err
	}
	if hasOwn {
		_, err := txn.DeleteAll(tableMeta, "id")
		must(err)
		must(txn.Insert(tableMeta, &own))
	}
	txn.Commit()
	return writeSnapshot(w, aside.View())
}
