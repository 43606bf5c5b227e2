package verify

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestValidCacheMatchesModel drives the cache through random adds, gets,
// removals by fingerprint and by key id, past its bound and across table
// growth and purges, and checks it against a plain slice kept in LRU order.
func TestValidCacheMatchesModel(t *testing.T) {
	const size = 300
	c := newValidCache(size)
	type entry struct {
		fp fingerprint
		id string
	}
	var model []entry // least recently used first
	fpOf := func(n int) fingerprint { return fingerprintOf(fmt.Sprintf("k%d", n)) }
	idOf := func(n int) string { return fmt.Sprintf("key_%d", n) }
	at := func(fp fingerprint) int {
		return slices.IndexFunc(model, func(e entry) bool { return e.fp == fp })
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 20000 {
		n := rng.IntN(600)
		fp, id := fpOf(n), idOf(n)
		switch op := rng.IntN(10); {
		case op < 5:
			evicted := c.add(fp, positive{idName: id + "\x00name", stored: uint32(step), expires: uint32(step + 1)})
			wantEvicted := false
			if i := at(fp); i >= 0 {
				model = slices.Delete(model, i, i+1)
			} else if len(model) == size {
				model, wantEvicted = model[1:], true
			}
			model = append(model, entry{fp, id})
			if evicted != wantEvicted {
				t.Fatalf("step %d: add evicted %v; want %v", step, evicted, wantEvicted)
			}
		case op < 8:
			p, ok := c.get(fp, true)
			i := at(fp)
			if ok != (i >= 0) || ok && p.keyID() != id {
				t.Fatalf("step %d: get(%d) = %v %v; model has it at %d", step, n, p.keyID(), ok, i)
			}
			if ok {
				model = append(slices.Delete(model, i, i+1), entry{fp, id})
			}
		case op < 9:
			got, ok := c.removeID(id)
			i := at(fp)
			if ok != (i >= 0) || ok && got != fp {
				t.Fatalf("step %d: removeID(%s) = %v; model has it at %d", step, id, ok, i)
			}
			if ok {
				model = slices.Delete(model, i, i+1)
			}
		default:
			c.remove(fp)
			if i := at(fp); i >= 0 {
				model = slices.Delete(model, i, i+1)
			}
		}
		if c.len() != len(model) {
			t.Fatalf("step %d: len %d; want %d", step, c.len(), len(model))
		}
		if step%5000 == 4999 {
			c.purge()
			model = nil
		}
	}
	// The ring holds the model's order, most recent first.
	i := c.slots[0].next
	for k := len(model) - 1; k >= 0; k-- {
		if c.slots[i].fp != model[k].fp {
			t.Fatalf("LRU order differs at %d", k)
		}
		i = c.slots[i].next
	}
}
