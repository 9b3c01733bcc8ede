// Command sockmem measures what an idle TCP connection costs the kernel,
// which no process's RSS shows: it opens N loopback connections, keeps
// the accepting ends in an epoll set (as hasses' loops do) with TCP_NODELAY
// and the given send buffer, and reports the growth of the kernel's slab
// caches (/proc/slabinfo, readable by root) and of the TCP buffer memory
// (/proc/net/sockstat), per connection. Caches that hold nothing of a
// socket are left out: other processes make them move. Both ends are on this host, so
// each slab's growth is halved (a socket is a socket, whichever end),
// except epoll's, which only the accepting end has.
//
//	go run ./bench/sockmem -n 8000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 8000, "connections (each takes two descriptors here)")
	sndbuf := flag.Int("sndbuf", 64<<10, "SO_SNDBUF of the accepting end, as hasses' -sndbuf")
	flag.Parse()

	// Raw sockets: Go's poller would put every one in an epoll set of its
	// own as well.
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	lo := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(lfd, lo); err != nil {
		log.Fatal(err)
	}
	if err := unix.Listen(lfd, 1024); err != nil {
		log.Fatal(err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		log.Fatal(err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		log.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	slab0, tcp0 := slabs(), sockstatMem()

	var keep []int
	for range *n {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			log.Fatal(err)
		}
		if err := unix.Connect(c, sa); err != nil {
			log.Fatalf("connect: %v", err)
		}
		s, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			log.Fatalf("accept: %v", err)
		}
		unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, *sndbuf)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(s)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, s, &ev); err != nil {
			log.Fatalf("epoll: %v", err)
		}
		keep = append(keep, c, s)
	}
	time.Sleep(500 * time.Millisecond)
	slab1, tcp1 := slabs(), sockstatMem()

	type row struct {
		name  string
		bytes float64
	}
	var rows []row
	var total float64
	for name, b := range slab1 {
		d := float64(b - slab0[name])
		if d <= 0 || unrelated(name) {
			continue
		}
		per := d / float64(2**n)
		if strings.HasPrefix(name, "eventpoll") {
			per = d / float64(*n)
		}
		if per < 8 {
			continue // another process's noise, not ours
		}
		rows = append(rows, row{name, per})
		total += per
	}
	slices.SortFunc(rows, func(a, b row) int { return int(b.bytes - a.bytes) })
	fmt.Printf("%d idle loopback connections: kernel memory per accepted socket\n", *n)
	for _, r := range rows {
		fmt.Printf("  %-24s %7.0f B\n", r.name, r.bytes)
	}
	fmt.Printf("  %-24s %7.0f B (%.2f KiB)\n", "slab total", total, total/1024)
	fmt.Printf("  %-24s %7.0f B\n", "TCP buffers (sockstat)", float64(tcp1-tcp0)*float64(os.Getpagesize())/float64(2**n))
	for _, fd := range keep {
		unix.Close(fd)
	}
}

// slabs returns the bytes of every slab cache's active objects; empty if
// /proc/slabinfo cannot be read (it needs root).
func slabs() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/slabinfo")
	if err != nil {
		log.Printf("sockmem: %v (run as root for the slab figures)", err)
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 || strings.HasPrefix(fs[0], "#") || fs[0] == "slabinfo" {
			continue
		}
		active, _ := strconv.ParseInt(fs[1], 10, 64)
		size, _ := strconv.ParseInt(fs[3], 10, 64)
		out[fs[0]] += active * size
	}
	return out
}

// sockstatMem returns the pages of TCP buffer memory.
func sockstatMem() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "TCP:" {
			for i := 1; i+1 < len(f); i += 2 {
				if f[i] == "mem" {
					n, _ := strconv.ParseInt(f[i+1], 10, 64)
					return n
				}
			}
		}
	}
	return 0
}

// unrelated says a cache holds nothing of a socket: its growth is other
// processes' (/proc lookups, memory maps).
func unrelated(name string) bool {
	for _, p := range []string{"proc_", "anon_vma", "vm_area", "buffer_head", "radix", "xfs_", "ext4_", "btrfs_", "task_", "mm_struct", "pid", "signal_", "sighand_", "files_cache", "cred_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
