package epoll

// The loop keeps its connections' deadlines (request head, stream
// lifetime or token expiry, the end of a linger) in a min-heap, and sleeps
// in epoll_wait no longer than until the first: a stream ends within a
// millisecond of its deadline, and a loop with no deadline due does no work.

// schedule files c under its current deadline, if that changed.
func (l *loop) schedule(c *conn) {
	at := c.Deadline().UnixNano()
	if c.Deadline().IsZero() {
		l.unschedule(c)
		return
	}
	if c.hidx >= 0 {
		if c.hat == at {
			return
		}
		c.hat = at
		l.fix(int(c.hidx))
		return
	}
	c.hat = at
	c.hidx = int32(len(l.heap))
	l.heap = append(l.heap, c)
	l.up(len(l.heap) - 1)
}

// unschedule takes c out of the heap.
func (l *loop) unschedule(c *conn) {
	i := int(c.hidx)
	if i < 0 {
		return
	}
	last := len(l.heap) - 1
	if i != last {
		l.swap(i, last)
	}
	l.heap[last] = nil
	l.heap = l.heap[:last]
	c.hidx = -1
	if i != last {
		l.fix(i)
	}
}

// due returns the connection with the earliest deadline, or nil.
func (l *loop) due() *conn {
	if len(l.heap) == 0 {
		return nil
	}
	return l.heap[0]
}

func (l *loop) fix(i int) {
	if !l.down(i) {
		l.up(i)
	}
}

func (l *loop) swap(i, j int) {
	h := l.heap
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = int32(i), int32(j)
}

func (l *loop) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if l.heap[i].hat <= l.heap[j].hat {
			break
		}
		l.swap(i, j)
		j = i
	}
}

func (l *loop) down(i0 int) bool {
	i, n := i0, len(l.heap)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && l.heap[r].hat < l.heap[j].hat {
			j = r
		}
		if l.heap[i].hat <= l.heap[j].hat {
			break
		}
		l.swap(i, j)
		i = j
	}
	return i > i0
}
