package consensus

// ValidateKey checks a key, or a prefix, that a read names, by the rules
// Command.Validate applies to writes: valid UTF-8, no leading "/". The
// empty key (the whole store) is allowed. The error matches ErrInvalidKey.
func ValidateKey(key string) error { return checkKey(key, true) }

// MaxValueSize is the largest value, in bytes, Apply accepts for a set or
// cas: Config.MaxValueSize.
func (n *Node) MaxValueSize() int { return n.cfg.MaxValueSize }
