package epoll

import (
	"testing"
	"unsafe"
)

// Tens of thousands of connections live at once: one stays within the
// 160-byte size class (stream.Conn's field order matters).
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 160 {
		t.Errorf("conn is %d bytes, over the 160-byte size class", n)
	}
}
