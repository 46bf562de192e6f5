# The client agent of docker-compose.yml. It takes no part in Raft: it
# gossips, and passes what only servers know (the key/value store, the
# Raft status) on to one of them.
server   = false
data_dir = "/conclave/data" # keeps the node ID across restarts

bind_addr   = "0.0.0.0"
client_addr = "0.0.0.0"

retry_join     = ["server-1", "server-2", "server-3"]
retry_interval = "2s"
