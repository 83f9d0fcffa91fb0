package eventrules

import (
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/traits"
)

// ruleIndex finds, for one event, the rules of its kind that can match.
// Each rule is filed under one of its guards (the one on the cheapest
// field to read with the most selective test): equality and `in [...]`
// tests in a map, startsWith and endsWith in sorted prefix sets, list
// membership by element, boolean fields under true. An event then reaches
// only the rules whose filed guard one of its field values passes, plus
// the rules without any guard. Candidates come back in rule order, so
// rules match and alerts fire in the order of a linear scan.
type ruleIndex struct {
	n      int     // rules of the kind
	always []int32 // rules without a guard: always candidates
	fields []*fieldIndex
	// filed is the guard each rule is filed under (nil: always); rest are
	// its other guards, the ones left to test on a candidate.
	filed []*guard
	rest  [][]*guard
}

// fieldIndex holds the tests filed on one field.
type fieldIndex struct {
	f        *field
	eq       map[string][]int32
	prefixes affixSet
	suffixes affixSet
	contains map[string][]int32 // list field: element -> rules
	isTrue   []int32
	// all is every rule filed here: when the value does not have the
	// field's type, their guards are tested one by one.
	all []int32
}

// candScratch is the per-engine scratch space of a lookup (the engine
// serialises Handle, so one is enough).
type candScratch struct {
	mark  []uint32
	gen   uint32
	out   []int32
	rev   []byte
	added int // sources added: more than one needs a sort
}

func (s *candScratch) begin(n int) {
	if len(s.mark) < n {
		s.mark = make([]uint32, n)
		s.gen = 0
	}
	s.gen++
	if s.gen == 0 {
		clear(s.mark)
		s.gen = 1
	}
	s.out = s.out[:0]
	s.added = 0
}

func (s *candScratch) add(ids []int32) {
	if len(ids) == 0 {
		return
	}
	s.added++
	for _, id := range ids {
		if s.mark[id] != s.gen {
			s.mark[id] = s.gen
			s.out = append(s.out, id)
		}
	}
}

func (s *candScratch) addOne(id int32) {
	s.added++
	if s.mark[id] != s.gen {
		s.mark[id] = s.gen
		s.out = append(s.out, id)
	}
}

// candidates returns the positions (in the kind's rule list, ascending)
// of the rules without a guard and of those whose filed guard passes for
// the event in c: only ix.rest of a candidate is left to test. The slice
// is scratch space, valid until the next call.
func (ix *ruleIndex) candidates(c *evalCtx, s *candScratch) []int32 {
	s.begin(ix.n)
	s.add(ix.always)
	for _, fi := range ix.fields {
		switch f := fi.f; {
		case f.str != nil:
			fi.matchString(f.str(c), s)
		case f.strs != nil:
			if fi.contains == nil {
				ix.slow(fi, c, s)
				break
			}
			for _, e := range f.strs(c) {
				s.add(fi.contains[e])
			}
		default:
			if !fi.match(c.value(f), s) {
				ix.slow(fi, c, s)
			}
		}
	}
	switch {
	case s.added <= 1 || len(s.out) <= 1:
	case len(s.out)*8 > ix.n: // many: a scan of the marks is cheaper than a sort
		s.out = s.out[:0]
		for id, m := range s.mark[:ix.n] {
			if m == s.gen {
				s.out = append(s.out, int32(id))
			}
		}
	default:
		slices.Sort(s.out)
	}
	return s.out
}

// match files the candidates of value v; false when v does not have a
// type the index handles.
func (fi *fieldIndex) match(v any, s *candScratch) bool {
	switch x := v.(type) {
	case types.String:
		fi.matchString(string(x), s)
	case types.Bool:
		if x {
			s.add(fi.isTrue)
		}
	case traits.Lister:
		ss, ok := x.Value().([]string)
		if !ok || fi.contains == nil {
			return false
		}
		for _, e := range ss {
			s.add(fi.contains[e])
		}
	default:
		return false
	}
	return true
}

// slow tests the filed guard of every rule filed on fi (for a value of
// an unexpected type, from runtime-built kinds).
func (ix *ruleIndex) slow(fi *fieldIndex, c *evalCtx, s *candScratch) {
	for _, id := range fi.all {
		if ix.filed[id].pass(c) {
			s.addOne(id)
		}
	}
}

func (fi *fieldIndex) matchString(v string, s *candScratch) {
	if fi.eq != nil {
		s.add(fi.eq[v])
	}
	fi.prefixes.match(v, s)
	if len(fi.suffixes.keys) > 0 {
		s.rev = reverse(s.rev[:0], v)
		fi.suffixes.match(unsafe.String(unsafe.SliceData(s.rev), len(s.rev)), s)
	}
}

func reverse(dst []byte, s string) []byte {
	for i := len(s) - 1; i >= 0; i-- {
		dst = append(dst, s[i])
	}
	return dst
}

// affixSet is a set of prefixes (suffixes are stored reversed and looked
// up with the reversed value) with the rules filed under each. The keys
// are sorted; the greatest key <= s has every key that is a prefix of s
// among its own prefixes (anything sorting between a prefix of s and s
// starts with that prefix), so one binary search and a walk of that key's
// prefix chain finds them all.
type affixSet struct {
	keys  []string
	rules [][]int32
	chain [][]int32 // per key: the keys that are prefixes of it, itself included
}

func (a *affixSet) match(s string, out *candScratch) {
	if len(a.keys) == 0 {
		return
	}
	i := sort.SearchStrings(a.keys, s)
	if i == len(a.keys) || a.keys[i] != s {
		i-- // the greatest key < s
	}
	if i < 0 {
		return
	}
	for _, j := range a.chain[i] {
		if strings.HasPrefix(s, a.keys[j]) {
			out.add(a.rules[j])
		}
	}
}

// affixBuilder collects keys before the set is frozen.
type affixBuilder map[string][]int32

func (b affixBuilder) build() affixSet {
	var a affixSet
	for k := range b {
		a.keys = append(a.keys, k)
	}
	slices.Sort(a.keys)
	for i, k := range a.keys {
		a.rules = append(a.rules, b[k])
		var ch []int32
		for j := 0; j <= i; j++ {
			if strings.HasPrefix(k, a.keys[j]) {
				ch = append(ch, int32(j))
			}
		}
		a.chain = append(a.chain, ch)
	}
	return a
}

// expensiveFields are read through the process cache (a lookup, and for
// ancestry a walk) or built per event; guards on other fields are filed
// first.
var expensiveFields = map[string]bool{
	"proc.args": true, "proc.cgroup": true, "proc.id": true,
	"proc.ancestors.comm": true, "proc.ancestors.exe": true, "proc.ancestors.name": true,
}

func fieldCost(f *field) int {
	if expensiveFields[f.name] || strings.HasPrefix(f.name, "parent.") {
		return 1
	}
	return 0
}

// guardRank orders the guards of a rule for filing: cheap fields first,
// then equality and membership before prefixes before booleans. An || of
// tests ranks as its weakest test.
func guardRank(g *guard) int {
	if g.any != nil {
		r := 1 << 30
		for _, a := range g.any {
			r = min(r, guardRank(a))
		}
		return r
	}
	var sel int
	switch {
	case g.isBool:
		sel = 1
	case g.contains != "":
		sel = 3
	case len(g.prefixes) == 0 && len(g.suffixes) == 0:
		sel = 3
	default:
		sel = 2
	}
	return sel - 3*fieldCost(g.f)
}

// buildIndex files the rules of one kind (in their evaluation order).
func buildIndex(rules []*Rule) *ruleIndex {
	ix := &ruleIndex{n: len(rules), filed: make([]*guard, len(rules)), rest: make([][]*guard, len(rules))}
	type fb struct {
		fi       *fieldIndex
		pre, suf affixBuilder
	}
	byField := map[*field]*fb{}
	var order []*field
	for i, r := range rules {
		id := int32(i)
		var best *guard
		for _, g := range r.guards {
			if best == nil || guardRank(g) > guardRank(best) {
				best = g
			}
		}
		if best == nil {
			ix.always = append(ix.always, id)
			continue
		}
		ix.filed[id] = best
		for _, g := range r.guards {
			if g != best {
				ix.rest[id] = append(ix.rest[id], g)
			}
		}
		for _, a := range alternatives(best) {
			b := byField[a.f]
			if b == nil {
				b = &fb{fi: &fieldIndex{f: a.f}, pre: affixBuilder{}, suf: affixBuilder{}}
				byField[a.f] = b
				order = append(order, a.f)
			}
			fi := b.fi
			if len(fi.all) == 0 || fi.all[len(fi.all)-1] != id {
				fi.all = append(fi.all, id)
			}
			switch {
			case a.isBool:
				fi.isTrue = appendID(fi.isTrue, id)
			case a.contains != "":
				if fi.contains == nil {
					fi.contains = map[string][]int32{}
				}
				fi.contains[a.contains] = appendID(fi.contains[a.contains], id)
			default:
				for v := range a.eq {
					if fi.eq == nil {
						fi.eq = map[string][]int32{}
					}
					fi.eq[v] = appendID(fi.eq[v], id)
				}
				for _, p := range a.prefixes {
					b.pre[p] = appendID(b.pre[p], id)
				}
				for _, p := range a.suffixes {
					rp := string(reverse(nil, p))
					b.suf[rp] = appendID(b.suf[rp], id)
				}
			}
		}
	}
	// Cheap fields first (a rule is only filed on an expensive field when
	// it has no guard on a cheap one).
	slices.SortStableFunc(order, func(a, b *field) int { return fieldCost(a) - fieldCost(b) })
	for _, f := range order {
		b := byField[f]
		b.fi.prefixes, b.fi.suffixes = b.pre.build(), b.suf.build()
		ix.fields = append(ix.fields, b.fi)
	}
	return ix
}

// appendID appends id unless it is already last (a rule testing one value
// twice).
func appendID(ids []int32, id int32) []int32 {
	if len(ids) > 0 && ids[len(ids)-1] == id {
		return ids
	}
	return append(ids, id)
}
