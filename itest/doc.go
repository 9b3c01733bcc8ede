// Package itest holds the integration tests: they build the real hasses
// binary, start it on loopback ports and talk to it as clients do, with raw
// sockets and a small SSE client.
package itest
