package consensus

// The single row tables: the cluster's metadata and the autopilot
// configuration.

// setClusterMeta writes the cluster ID once. Writing the same ID again
// changes nothing and succeeds; another ID is refused (false): a cluster
// never changes its identity.
func (t *tx) setClusterMeta(id string) bool {
	raw, err := t.mt.First(tableMeta, "id")
	must(err)
	if raw != nil {
		return raw.(*ClusterMeta).ClusterID == id
	}
	must(t.mt.Insert(tableMeta, &ClusterMeta{ClusterID: id, CreateIndex: t.idx, ModifyIndex: t.idx}))
	t.touch(indexedMeta)
	return true
}

// setAutopilotConfig writes the autopilot configuration as Consul's
// AutopilotSetConfig and AutopilotCASConfig do: it keeps CreateIndex, and
// with cas it writes only if a configuration exists with ModifyIndex
// index.
func (t *tx) setAutopilotConfig(c AutopilotConfig, cas bool, index uint64) bool {
	raw, err := t.mt.First(tableAutopilot, "id")
	must(err)
	old, _ := raw.(*AutopilotConfig)
	if cas && (old == nil || old.ModifyIndex != index) {
		return false
	}
	c.CreateIndex, c.ModifyIndex = t.idx, t.idx
	if old != nil {
		c.CreateIndex = old.CreateIndex
	}
	must(t.mt.Insert(tableAutopilot, &c))
	t.touch(indexedAutopilot)
	return true
}
