// Package nomadjob checks the Nomad job deploy/nomad/conclave.nomad.hcl
// with Nomad's own code, and runs it without Nomad.
//
// It is a module of its own (test/nomadjob/go.mod) because Nomad's job
// parser, jobspec2, builds only with Nomad's fork of hcl/v2, and the main
// module's newer hcl/v2 would replace it. For the same reason nothing here
// imports the main module: the tests build the conclave binary from the
// repository root and run it.
//
// The tests:
//
//   - parse the job with jobspec2.ParseWithConfig, as `nomad job run`
//     does, into an api.Job, and check what the deployment depends on:
//     the job type and count, distinct_hosts, the host volume at data_dir,
//     bootstrap_expect, where retry_join comes from, the update, restart,
//     reschedule and disconnect blocks, the health checks and the
//     template's change_mode;
//   - parse broken variants of the job and check Nomad's error;
//   - render the retry_join template with consul-template, the template
//     engine Nomad embeds, from a catalog of Nomad service registrations;
//   - run the job's task the way a Nomad client would, three times, on
//     loopback: register the allocation's services, render its template,
//     interpolate its args with Nomad's interpolation, start the real
//     conclave binary; then check that the three form one cluster through
//     the job's own health checks, and that the rollout gate holds while a
//     server is replaced.
//
// Run them with:
//
//	cd test/nomadjob && go test -count=1 -v ./...
package nomadjob
