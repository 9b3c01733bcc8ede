package chunked

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httputil"
	"strconv"
	"strings"
	"testing"
)

func TestPutHeaderMatchesAppend(t *testing.T) {
	for _, n := range []int{1, 15, 16, 255, 256, 4095, 65536, 1 << 30} {
		buf := make([]byte, HeaderLen(n))
		PutHeader(buf, n)
		want := strconv.FormatInt(int64(n), 16) + "\r\n"
		if string(buf) != want {
			t.Fatalf("n=%d: header %q, want %q", n, buf, want)
		}
	}
}

func FuzzAppend(f *testing.F) {
	f.Add([]byte("id: 1\ndata: x\n\n"), []byte(": \n\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		body := Append(Append(nil, a), b)
		r := httputil.NewChunkedReader(bufio.NewReader(io.MultiReader(bytes.NewReader(body), strings.NewReader(Last))))
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("decoding %q: %v", body, err)
		}
		if want := string(a) + string(b); string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
