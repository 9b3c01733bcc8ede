package handshake

import (
	"strings"
	"testing"
)

// browserHead is what Chrome's EventSource sends, with ten headers.
func browserHead() []byte {
	return []byte("GET /sse?subscribe=room1-user42&id=c42 HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"Connection: keep-alive\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
		"Accept: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Origin: https://example.com\r\n" +
		"Sec-Fetch-Site: same-site\r\n" +
		"Sec-Fetch-Mode: cors\r\n" +
		"Referer: https://example.com/app\r\n" +
		"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\n\r\n")
}

func BenchmarkParse(b *testing.B) {
	head := browserHead()
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(head, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// The worst a client can ask of the duplicate check: a full head of
// short, mostly repeated tokens.
func BenchmarkParseManyTokens(b *testing.B) {
	sub := distinct(64) + strings.Repeat("-t63", 2000)
	head := []byte("GET /sse?subscribe=" + sub[:min(len(sub), 8000)] + " HTTP/1.1\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(head, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHeadEnd(b *testing.B) {
	head := browserHead()
	for b.Loop() {
		if HeadEnd(head) != len(head) {
			b.Fatal("wrong end")
		}
	}
}

func BenchmarkAppendStreamHead(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendStreamHead(buf[:0], cfg, fixedNow, "")
	}
}

// Like BenchmarkParseManyTokens, but below the number of tokens where duplicates are
// found with a set.
func BenchmarkParseManyTokensLinear(b *testing.B) {
	sub := distinct(7) + strings.Repeat("-t6", 2000)
	head := []byte("GET /sse?subscribe=" + sub[:min(len(sub), 8000)] + " HTTP/1.1\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(head, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
