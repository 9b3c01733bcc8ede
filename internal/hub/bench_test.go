package hub

import (
	"fmt"
	"testing"
)

var payload64 = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

// BenchmarkPublishExact: encode once and append to one topic with
// subscribers, plus the all-events log.
func BenchmarkPublishExact(b *testing.B) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	for range 100 {
		h.Subscribe(o, []string{"room"}, "", "", nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(Message{Targets: []string{"room"}, Data: payload64})
		if len(o.dirty) > 0 {
			h.Collect(o, nil)
		}
	}
}

// BenchmarkPublishPrefix routes "room1*" over 2,000 tokens, 111 matching.
func BenchmarkPublishPrefix(b *testing.B) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	for i := range 2000 {
		h.Subscribe(o, []string{fmt.Sprintf("room%d", i)}, "", "", nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Publish(Message{Targets: []string{"room1*"}, Data: payload64})
		if len(o.dirty) > 0 {
			h.Collect(o, nil)
		}
		if b.N%1000 == 0 {
			h.Trim()
		}
	}
}

// BenchmarkDeliver measures the per-delivery work of a flush without the
// syscall: Collect, Fill and Wrote for 1,000 subscribers on 100 tokens with
// exclusion, one event each. Reported per delivery.
func BenchmarkDeliver(b *testing.B) {
	for _, perWrite := range []int{1, 32} {
		b.Run(fmt.Sprintf("events-per-write=%d", perWrite), func(b *testing.B) {
			h := New(Config{})
			o := h.NewOwner(func() {})
			for i := range 1000 {
				h.Subscribe(o, []string{fmt.Sprintf("t%d", i%100)}, fmt.Sprint(i), "", nil)
			}
			var batch Batch
			var ready []*Sub
			var tokens, ids []string
			for i := range 100 {
				tokens = append(tokens, fmt.Sprintf("t%d", i))
				ids = append(ids, fmt.Sprint(i))
			}
			b.ReportAllocs()
			deliveries := 0
			for b.Loop() {
				b.StopTimer() // publishing is measured by BenchmarkPublish*
				for k := range perWrite {
					for _, tok := range tokens {
						h.Publish(Message{Targets: []string{tok}, Exclude: ids[k], Data: payload64})
					}
				}
				b.StartTimer()
				ready = h.Collect(o, ready[:0])
				for _, s := range ready {
					h.Fill(s, &batch, 1024, 1<<20)
					deliveries += s.Wrote(&batch, batch.Bytes)
				}
				if len(ready) != 1000 {
					b.Fatalf("%d ready", len(ready))
				}
				b.StopTimer()
				h.Trim()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(deliveries, 1)), "ns/delivery")
		})
	}
}

// BenchmarkSubscribeManyTopics subscribes streams to 64 new tokens each:
// its cost per subscription must not grow with the number of topics.
func BenchmarkSubscribeManyTopics(b *testing.B) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	tokens := make([]string, 64)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		for k := range tokens {
			tokens[k] = fmt.Sprintf("u%d-%d", i, k)
		}
		h.Subscribe(o, tokens, "", "", nil)
		i++
	}
}

// BenchmarkFillTokens measures a delivery to a stream on many tokens:
// 16,384 streams with K tokens of their own each (per-user style: about a
// million topics at K=64), events published to a random stream's random
// token, then what a loop pass does (Collect, and per stream Fill and
// Wrote until Fill finds nothing, as stream.Flush). Reported per delivery;
// its cost should not grow with K.
func BenchmarkFillTokens(b *testing.B) {
	const streams = 16384
	const perPass = 64 // events published between two passes
	for _, k := range []int{1, 64} {
		b.Run(fmt.Sprint(k), func(b *testing.B) {
			h := New(Config{})
			o := h.NewOwner(func() {})
			tokens := make([][]string, streams)
			for i := range tokens {
				for j := range k {
					tokens[i] = append(tokens[i], fmt.Sprintf("u%dx%d", i, j))
				}
				h.Subscribe(o, tokens[i], "", "", nil)
			}
			var batch Batch
			var ready []*Sub
			flush := func() int {
				n := 0
				ready = h.Collect(o, ready[:0])
				for _, s := range ready {
					for {
						if h.Fill(s, &batch, 1024, 1<<20) {
							b.Fatal("lagging")
						}
						if len(batch.Bufs) == 0 {
							break
						}
						n += s.Wrote(&batch, batch.Bytes)
					}
				}
				return n
			}
			flush() // every stream's first fill
			rnd := uint64(1)
			next := func() uint64 { // xorshift: cheap and deterministic
				rnd ^= rnd << 13
				rnd ^= rnd >> 7
				rnd ^= rnd << 17
				return rnd
			}
			deliveries := 0
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for range perPass {
					r := next()
					i := r % streams
					h.Publish(Message{Targets: []string{tokens[i][(r>>32)%uint64(k)]}, Data: payload64})
				}
				b.StartTimer()
				deliveries += flush()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(deliveries, 1)), "ns/delivery")
		})
	}
}
