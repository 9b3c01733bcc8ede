package loadgen

import "strconv"

// Token assignment. Tokens are numbered 0 .. n-1 and named prefix+number;
// index n stands for the broadcast token "*", which every stream receives.
// Stream i subscribes to the k consecutive tokens (i·k + j) mod n, j < k:
// with k = 1 that is token i mod n, as before; with n = streams × k every
// stream has k tokens of its own (per-user style); in between, every token
// has about streams × k / n subscribers. Which tokens a stream has is a
// function of its index, so the parent and the workers need not exchange it.

// firstToken returns the first token of stream idx: its tokens are
// first, first+1, ... (mod n).
func firstToken(idx, k, n int) int { return int((int64(idx) * int64(k)) % int64(n)) }

// tokenSlot returns which of stream idx's k tokens tok is (0 .. k-1), or -1
// if the stream does not subscribe to it.
func tokenSlot(idx, k, n, tok int) int {
	if tok < 0 || tok >= n {
		return -1
	}
	j := tok - firstToken(idx, k, n)
	if j < 0 {
		j += n
	}
	if j >= k {
		return -1
	}
	return j
}

// appendSubscribe appends stream idx's subscribe= value: its tokens joined
// by '-'.
func appendSubscribe(dst []byte, idx, k, n int, prefix string) []byte {
	first := firstToken(idx, k, n)
	for j := range k {
		if j > 0 {
			dst = append(dst, '-')
		}
		dst = append(dst, prefix...)
		dst = strconv.AppendInt(dst, int64((first+j)%n), 10)
	}
	return dst
}

// picked reports whether stream idx is one of m streams of n picked evenly
// over the indices: of n streams exactly m, and of any run of consecutive
// ones their share, rounded down or up.
func picked(idx, m, n int) bool {
	if m <= 0 || n <= 0 {
		return false
	}
	return (int64(idx)+1)*int64(m)/int64(n) > int64(idx)*int64(m)/int64(n)
}
