//go:build race

package itest

// raceEnabled builds the daemon under test with the race detector too, so
// integration tests also catch data races inside the server.
const raceEnabled = true
