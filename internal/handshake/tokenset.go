package handshake

import "hash/maphash"

// tokenSet finds duplicate tokens in a long subscribe list. Up to
// smallSetMax tokens (the default -max-tokens is 64) it is an open-addressing
// table of indices on the stack: a connect storm of streams on 64 tokens each
// then leaves no map per request for the collector. Longer lists, which
// only a raised -max-tokens allows, use a map.
type tokenSet struct {
	small  [2 * smallSetMax]uint8 // index+1 into the tokens; 0 is empty
	big    map[string]struct{}
	active bool
}

// smallSetMax is the most tokens the table holds, at a load of one half.
const smallSetMax = 127

var tokenSeed = maphash.MakeSeed()

func (s *tokenSet) on() bool { return s.active }

// start makes the set hold tokens, of which there will be at most n.
func (s *tokenSet) start(tokens []string, n int) {
	s.active = true
	if n > smallSetMax {
		s.big = make(map[string]struct{}, n)
	}
	for i := range tokens {
		s.add(tokens, i)
	}
}

// slot is where tok is in the table, or the empty slot where it would go.
func (s *tokenSet) slot(tokens []string, tok string) int {
	i := int(maphash.String(tokenSeed, tok) % uint64(len(s.small)))
	for s.small[i] != 0 && tokens[s.small[i]-1] != tok {
		i = (i + 1) % len(s.small)
	}
	return i
}

func (s *tokenSet) add(tokens []string, i int) {
	if s.big != nil {
		s.big[tokens[i]] = struct{}{}
		return
	}
	s.small[s.slot(tokens, tokens[i])] = uint8(i + 1)
}

func (s *tokenSet) has(tokens []string, tok string) bool {
	if s.big != nil {
		_, ok := s.big[tok]
		return ok
	}
	return s.small[s.slot(tokens, tok)] != 0
}
