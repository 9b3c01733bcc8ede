// Package web holds the files the SSE port serves besides streams: the page
// helper hasses.js (GET /hasses.js) and its types.
package web

import _ "embed"

// Script is hasses.js.
//
//go:embed hasses.js
var Script []byte

// ScriptPath is where the SSE port serves Script.
const ScriptPath = "/hasses.js"
