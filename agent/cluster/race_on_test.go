//go:build race

package cluster

// raceDetector reports whether the tests run with -race.
const raceDetector = true
