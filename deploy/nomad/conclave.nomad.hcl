# Conclave servers on Nomad: one service job, three server allocations on
# three distinct hosts, each with its data_dir on a host volume of its host.
#
#   nomad job run deploy/nomad/conclave.nomad.hcl
#   nomad job run -var image=registry.example.com/conclave:1.2.3 deploy/nomad/conclave.nomad.hcl
#
# What the Nomad clients need (website/deployment-nomad.md has the details):
#   - the docker driver, and the image (`make image` builds conclave:local);
#   - on each server host, a host volume named var.host_volume, writable by
#     uid 100 (the image's user):
#       client { host_volume "conclave-data" { path = "/opt/conclave/data" } }
#   - ports 8300 (Raft), 8301 (Serf, TCP and UDP) and 8500 (HTTP) free on
#     the host network, and reachable between the server hosts.
#
# Discovery, in short: each allocation registers the Nomad service
# "conclave-serf" before its task starts, and a template renders the other
# registered servers into retry_join. Nomad's native service catalog lists
# an instance whether or not its checks pass, so discovery never waits for
# the rollout gate, which cannot pass before the cluster has bootstrapped.

variable "servers" {
  type        = number
  default     = 3
  description = "Number of servers: the group count and bootstrap_expect."

  validation {
    condition     = var.servers >= 3 && var.servers % 2 == 1
    error_message = "The servers value must be an odd number of at least 3: one server has no fault tolerance, and an even number tolerates no more failures than the odd number below it."
  }
}

variable "image" {
  type        = string
  default     = "conclave:local"
  description = "Container image of Conclave (deploy/docker; `make image` builds conclave:local)."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Nomad datacenters to place the servers in."
}

variable "host_volume" {
  type        = string
  default     = "conclave-data"
  description = "Name of the host volume, declared by the Nomad client of each server host, that holds data_dir."
}

locals {
  # Where the host volume is mounted in the container, and the agent's
  # data_dir: the node ID, the Raft log and snapshots, the Serf snapshot.
  data_dir = "/conclave/data"
}

job "conclave" {
  type        = "service"
  datacenters = var.datacenters

  group "server" {
    count = var.servers

    # One server per host: two servers on one host would fail together, and
    # would compete for the same host volume and the same static ports.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    # The identity of a server (its node ID) lives in data_dir, so it belongs
    # to the host that holds the volume. A server is only ever placed on a
    # host that declares the volume.
    volume "data" {
      type      = "host"
      source    = var.host_volume
      read_only = false
    }

    # sticky makes the scheduler place an updated allocation on the host of
    # the one it replaces, which matters when more hosts than servers
    # declare the volume: elsewhere the server would start as a new node.
    ephemeral_disk {
      sticky = true
    }

    # Host networking and the agent's default ports. Static ports keep every
    # server's gossip port the same, which retry_join entries rely on, and
    # let the scheduler refuse a host where they are taken.
    network {
      mode = "host"

      port "server" {
        static = 8300
      }
      port "serf" {
        static = 8301
      }
      port "http" {
        static = 8500
      }
    }

    # Discovery. A group service is registered when the allocation starts,
    # before its task and therefore before the template below renders: every
    # server is in the catalog before it looks for the others. Nomad's native
    # catalog (provider = "nomad") stores no health and lists every
    # registered instance whatever its checks say, so this service has no
    # checks and discovery does not depend on any.
    service {
      provider = "nomad"
      name     = "conclave-serf"
      port     = "serf"
    }

    # Health. Nomad runs these checks against the HTTP API (on the host's
    # address, see -client below).
    service {
      provider = "nomad"
      name     = "conclave"
      port     = "http"

      # Liveness: the agent answers HTTP. Three failures in a row restart
      # the task. This is the only check that restarts anything.
      check {
        name     = "alive"
        type     = "http"
        path     = "/v1/agent/health"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }

      # Readiness: started, and not leaving. It passes before the cluster
      # bootstraps, so it shows progress; on_update = "ignore" keeps it out
      # of deployment health.
      check {
        name      = "ready"
        type      = "http"
        path      = "/v1/status/ready"
        interval  = "10s"
        timeout   = "2s"
        on_update = "ignore"
      }

      # The rollout gate: 200 only when this server is a caught-up voter and
      # the cluster tolerates one failure again. Deployment health
      # (update.health_check = "checks") waits for it, so Nomad stops the
      # next server only when losing it cannot cost the quorum
      # (hashicorp/consul#8118). It has no check_restart on purpose: while
      # another server is down it fails on every healthy server, and
      # restarting them would turn one failure into a lost quorum. A
      # follower asks the leader and answers within 2s; the 3s timeout lets
      # its one-line reason, rather than a timeout, reach the check output.
      check {
        name     = "voter"
        type     = "http"
        path     = "/v1/status/ready?voter"
        interval = "5s"
        timeout  = "3s"
      }
    }

    # Rolling updates: one server at a time, the next one only after the
    # replacement passes every check above except "ready" (that is, the
    # rollout gate) for min_healthy_time. The first version of the job
    # places all servers at once: max_parallel limits replacements, not
    # initial placements, so bootstrap_expect can be met.
    update {
      max_parallel      = 1
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "5m"
      progress_deadline = "10m"
      # A failed rollout stops and waits for a person. Reverting would
      # replace the unhealthy server at once, without the gate, and if the
      # gate failed because another server is down, that loses the quorum.
      auto_revert = false
    }

    # Node drains move one server at a time, behind the same gate.
    migrate {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "5m"
    }

    # A crashed agent restarts in place, on its host and with its data_dir,
    # and keeps its place in Raft. render_templates = true renders retry_join
    # again from the catalog of the moment instead of the one at first start.
    # After three crashes in ten minutes the allocation fails and is
    # rescheduled.
    restart {
      attempts         = 3
      interval         = "10m"
      delay            = "15s"
      mode             = "fail"
      render_templates = true
    }

    # Rescheduling keeps trying, slower and slower. It can only choose a host
    # with the volume and without another server; on a host other than the
    # old one the server starts with an empty data_dir, as a new node.
    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    # A server whose host stops heartbeating to the Nomad servers keeps
    # running, and keeps its place in Raft if its peers still reach it.
    # Nomad starts no replacement while the host is only disconnected: a
    # replacement elsewhere would be a new node, and the original would keep
    # a vote the replacement cannot take over. After lost_after the
    # allocation is lost and replaced as usual. When the host comes back in
    # time, the original allocation is the one kept.
    disconnect {
      lost_after = "1h"
      replace    = false
      reconcile  = "keep_original"
    }

    task "conclave" {
      driver = "docker"

      # SIGTERM: a graceful shutdown that does not leave the cluster
      # (leave_on_terminate defaults to false), so that a restarted or
      # updated server takes its place back. The shutdown takes at most 15s.
      kill_signal  = "SIGTERM"
      kill_timeout = "20s"

      config {
        image        = var.image
        network_mode = "host"

        # Flags rather than a config file, so that `nomad alloc status`
        # shows them. Flags override the files of -config-dir, which holds
        # only the rendered retry_join.
        args = [
          "agent",
          "-server",
          "-bootstrap-expect=${var.servers}",
          # Stable and unique: one server per host, and the name follows the
          # host, as the node ID in data_dir does.
          "-node=${node.unique.name}",
          "-data-dir=${local.data_dir}",
          "-bind=${NOMAD_IP_serf}",
          "-client=${NOMAD_IP_http}",
          "-server-port=${NOMAD_PORT_server}",
          "-serf-lan-port=${NOMAD_PORT_serf}",
          "-http-port=${NOMAD_PORT_http}",
          "-retry-interval=10s",
          "-config-dir=${NOMAD_TASK_DIR}/conclave.d",
        ]
      }

      # The CLI inside the allocation (nomad alloc exec ... conclave members)
      # finds the HTTP API here.
      env {
        CONCLAVE_HTTP_ADDR = "${NOMAD_ADDR_http}"
      }

      volume_mount {
        volume      = "data"
        destination = local.data_dir
      }

      # retry_join: the gossip addresses of the other servers in the catalog.
      #
      # The list leaves this allocation out: a join that reaches only itself
      # would count as a success and end the retries. It may be empty; then
      # the agent waits to be joined, which the servers that start after it
      # do, since it is already in the catalog when they render theirs. The
      # last server to render always sees all the others, so the servers end
      # up in one gossip pool, and bootstrap_expect is met. The one gap: a
      # catalog read from a Nomad server that lags by longer than the time
      # between a registration and the first render can hide two servers
      # that start at the same moment from each other. The deployment then
      # does not become healthy, and `conclave members` shows a server
      # alone; `nomad alloc restart` renders its list again
      # (render_templates = true) and it joins the others.
      #
      # change_mode = "noop": when servers come and go, the file changes and
      # the agent is left alone. Restarting servers on every membership
      # change would make one server's failure restart all the others, and
      # the agent does not reload retry_join on a signal (SIGHUP reloads only
      # log_level). Nothing is lost: the list is read once at start, joining
      # ends at the first success, and from then on gossip and the Serf
      # snapshot in data_dir keep the membership; a restarting server also
      # rejoins the members in that snapshot.
      template {
        destination = "local/conclave.d/retry-join.hcl"
        change_mode = "noop"
        data        = <<-EOT
          # Rendered by Nomad from the service "conclave-serf"; see the job file.
          retry_join = [
          {{- range nomadService "conclave-serf" }}
          {{- if ne .AllocID (env "NOMAD_ALLOC_ID") }}
            "{{ if .Address | regexMatch ":" }}[{{ .Address }}]{{ else }}{{ .Address }}{{ end }}:{{ .Port }}",
          {{- end }}
          {{- end }}
          ]
        EOT
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
