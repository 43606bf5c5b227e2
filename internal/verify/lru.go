package verify

import "hash/maphash"

// validCache is the bounded least-recently-used cache of valid answers,
// found by fingerprint on a request and by key id on a revocation. It is
// not locked: the engine holds its own lock around every call.
//
// It is built for memory, since it holds up to millions of entries (see
// BenchmarkMemoryPerCachedKey). golang-lru's simplelru spends a heap object
// of 112 bytes per entry (three pointers and an unused expiry time.Time
// beside key and value) and a Go map slot; a second Go map from key id to
// entry costs 40 more. Here the entries sit in one slice, linked by 32-bit
// indices, and both lookups are chained hash tables whose chains run
// through the entries: about 8 bytes of table per entry for both.
type validCache struct {
	seed  maphash.Seed // keys the tables' hashes, so no client can choose its chain
	byFP  []int32      // chain heads by fingerprint; 0 ends a chain
	byID  []int32      // chain heads by key id
	slots []validSlot  // slots[0] is the LRU ring's root
	free  int32        // first of the freed slots, chained through next; 0 when none
	n     int
	size  int
}

type validSlot struct {
	fp             fingerprint
	prev, next     int32 // the LRU ring; a freed slot has prev -1
	fpNext, idNext int32 // the hash chains
	p              positive
}

func newValidCache(size int) *validCache {
	c := &validCache{seed: maphash.MakeSeed(), size: size}
	c.reset()
	return c
}

func (c *validCache) reset() {
	c.slots = make([]validSlot, 1, min(c.size, 1024)+1)
	c.byFP, c.byID = make([]int32, 64), make([]int32, 64)
	c.free, c.n = 0, 0
}

func (c *validCache) len() int { return c.n }

func (c *validCache) fpHead(fp fingerprint) *int32 {
	return &c.byFP[maphash.Bytes(c.seed, fp[:])&uint64(len(c.byFP)-1)]
}

func (c *validCache) idHead(id string) *int32 {
	return &c.byID[maphash.String(c.seed, id)&uint64(len(c.byID)-1)]
}

func (c *validCache) find(fp fingerprint) int32 {
	i := *c.fpHead(fp)
	for i != 0 && c.slots[i].fp != fp {
		i = c.slots[i].fpNext
	}
	return i
}

// get returns fp's answer; touch marks it most recently used.
func (c *validCache) get(fp fingerprint, touch bool) (positive, bool) {
	i := c.find(fp)
	if i == 0 {
		return positive{}, false
	}
	if touch {
		c.unlink(i)
		c.pushFront(i)
	}
	return c.slots[i].p, true
}

// add stores p under fp as the most recently used entry, and reports
// whether the bound pushed another entry out.
func (c *validCache) add(fp fingerprint, p positive) (evicted bool) {
	c.remove(fp)
	if c.n >= c.size {
		c.drop(c.slots[0].prev) // the least recently used
		evicted = true
	}
	var i int32
	if c.free != 0 {
		i = c.free
		c.free = c.slots[i].next
	} else {
		c.slots = append(c.slots, validSlot{})
		i = int32(len(c.slots) - 1)
	}
	c.slots[i] = validSlot{fp: fp, p: p}
	c.n++
	c.pushFront(i)
	c.link(i)
	if c.n > len(c.byFP) {
		c.grow()
	}
	return evicted
}

// remove drops fp's answer, if any.
func (c *validCache) remove(fp fingerprint) {
	if i := c.find(fp); i != 0 {
		c.drop(i)
	}
}

// findID returns the slot of the key keyID's answer, or 0.
func (c *validCache) findID(keyID string) int32 {
	i := *c.idHead(keyID)
	for i != 0 && c.slots[i].p.keyID() != keyID {
		i = c.slots[i].idNext
	}
	return i
}

// removeID drops the answer for the key keyID, if any, and returns its
// fingerprint.
func (c *validCache) removeID(keyID string) (fingerprint, bool) {
	i := c.findID(keyID)
	if i == 0 {
		return fingerprint{}, false
	}
	fp := c.slots[i].fp
	c.drop(i)
	return fp, true
}

// shortenID moves the expiry of the key keyID's answer, if any, back to
// expires, never forward, and reports whether the key was cached.
func (c *validCache) shortenID(keyID string, expires uint32) bool {
	i := c.findID(keyID)
	if i == 0 {
		return false
	}
	c.slots[i].p.expires = min(c.slots[i].p.expires, expires)
	return true
}

// purge drops every answer and gives back the memory.
func (c *validCache) purge() { c.reset() }

// drop unlinks slot i from the ring and both chains and frees it.
func (c *validCache) drop(i int32) {
	s := &c.slots[i]
	c.unlink(i)
	unchain(c.fpHead(s.fp), i, func(j int32) *int32 { return &c.slots[j].fpNext })
	unchain(c.idHead(s.p.keyID()), i, func(j int32) *int32 { return &c.slots[j].idNext })
	*s = validSlot{prev: -1, next: c.free} // no string outlives its entry
	c.free = i
	c.n--
}

// unchain removes i from the chain starting at head.
func unchain(head *int32, i int32, next func(int32) *int32) {
	for at := head; *at != 0; at = next(*at) {
		if *at == i {
			*at = *next(i)
			return
		}
	}
}

// link puts slot i at the head of its two chains.
func (c *validCache) link(i int32) {
	s := &c.slots[i]
	h := c.fpHead(s.fp)
	s.fpNext, *h = *h, i
	h = c.idHead(s.p.keyID())
	s.idNext, *h = *h, i
}

// grow doubles the tables and links every entry again, keeping chains to
// one entry on average.
func (c *validCache) grow() {
	c.byFP, c.byID = make([]int32, 2*len(c.byFP)), make([]int32, 2*len(c.byID))
	for i := int32(1); int(i) < len(c.slots); i++ {
		if c.slots[i].prev >= 0 {
			c.link(i)
		}
	}
}

func (c *validCache) unlink(i int32) {
	s := &c.slots[i]
	c.slots[s.prev].next = s.next
	c.slots[s.next].prev = s.prev
}

func (c *validCache) pushFront(i int32) {
	first := c.slots[0].next
	c.slots[i].prev, c.slots[i].next = 0, first
	c.slots[first].prev = i
	c.slots[0].next = i
}
