# A Consul server's configuration, as a production cluster runs it (minus
# ACLs, TLS and gossip encryption). Conclave loads it with a warning for
# each setting it ignores, and no error.
datacenter = "dc1"
node_name  = "consul-server-1"
data_dir   = "/opt/consul"
log_level  = "INFO"

server           = true
bootstrap_expect = 3

bind_addr      = "{{ GetPrivateIP }}"
advertise_addr = "{{ GetPrivateIP }}"
client_addr    = "0.0.0.0"

retry_join = ["provider=aws tag_key=consul-cluster tag_value=prod region=eu-west-1"]

leave_on_terminate      = true
skip_leave_on_interrupt = true

ui_config {
  enabled = true
}

connect {
  enabled = true
}

addresses {
  grpc = "127.0.0.1"
  dns  = "127.0.0.1"
}

ports {
  http     = 8500
  grpc     = 8502
  grpc_tls = 8503
  dns      = 8600
  serf_lan = 8301
  serf_wan = 8302
  server   = 8300
}

performance {
  raft_multiplier  = 1
  leave_drain_time = "5s"
}

telemetry {
  prometheus_retention_time = "24h"
  disable_hostname          = true
}

dns_config {
  enable_truncate = true
  only_passing    = true
}

recursors            = ["1.1.1.1", "8.8.8.8"]
domain               = "consul"
disable_update_check = true
enable_script_checks = false
raft_protocol        = 3
log_file             = "/var/log/consul/"
log_rotate_max_files = 10

node_meta {
  rack = "r1"
}

limits {
  http_max_conns_per_client = 200
}
