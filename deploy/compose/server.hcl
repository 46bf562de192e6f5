# Shared by the three servers of docker-compose.yml; each one adds its own
# node name with -node. See website/configuration.md for every key.
server           = true
bootstrap_expect = 3
data_dir         = "/conclave/data" # a named volume per server

# Gossip and Raft listen on every interface of the container and advertise
# its private IP. The HTTP API listens on every interface too, for the
# published port and for the healthcheck (conclave health -ready dials
# 127.0.0.1:8500).
bind_addr   = "0.0.0.0"
client_addr = "0.0.0.0"

# Service names, resolved by Docker's DNS on every attempt; a server that
# is not up yet simply resolves to nothing.
retry_join     = ["server-1", "server-2", "server-3"]
retry_interval = "2s"
