// Package deploy checks the deployment files under deploy/ without a
// cluster. Its tests run the real helm binary on the chart in
// deploy/helm/conclave: helm lint --strict, and helm template with the
// default values and with non-default ones. They decode every rendered
// manifest strictly into the k8s.io/api types, so an unknown field or a
// wrong type fails, and then check what the chart promises: the StatefulSet,
// its probes and volumes, the Services, the PodDisruptionBudget, the RBAC
// objects of the k8s provider, and the rejection of bad values.
//
// The agent's command line in the rendered pod is also run through Conclave's
// own flag parser and configuration loader (config.Load), and its retry_join
// entries through the discover package, so that the chart and the agent
// cannot drift apart.
//
// helm is looked up in PATH, then in $(go env GOBIN) and $(go env GOPATH)/bin.
// The tests fail, with the command to install it, when it is missing:
//
//	go install helm.sh/helm/v3/cmd/helm@v3.22.0
package deploy
