// Package docker tests Conclave as operators deploy it: the container image
// of deploy/docker, the Compose cluster of deploy/compose, and clusters of
// real containers run the way Kubernetes runs a StatefulSet, discovered
// through go-discover's k8s provider against test/fakek8s.
//
// The tests need a Docker engine. Without one (docker info fails) every
// test that needs it skips and says why; the check that the two Dockerfiles
// agree still runs. The image is built once per run with
// deploy/docker/build-local.sh under a tag of its own and removed at the
// end.
//
// Every container, network and volume of a run is named with the run's
// prefix, cdt-<expiry>-<random>-, where expiry is a Unix time in hex after
// which nothing of the run may still be in use. Each test removes what it
// created in t.Cleanup, also when it fails; each run first removes what
// expired runs left behind (a run killed by a timeout has no cleanup). The
// tests dial only 127.0.0.1 ports they published and the IPs of containers
// on networks they created.
//
// Run them with:
//
//	go test -count=1 -v ./test/docker/
package docker
