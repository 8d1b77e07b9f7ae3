package demo

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// h hashes the seed and parts into 64 bits: the root of every value the demo
// estate has, so any entity can be derived directly for any day.
func (g *Generator) h(parts ...any) uint64 {
	f := fnv.New64a()
	fmt.Fprint(f, g.seed)
	for _, p := range parts {
		f.Write([]byte{0})
		fmt.Fprint(f, p)
	}
	return mix(f.Sum64())
}

// mix is splitmix64's finaliser: it spreads FNV's weak low bits.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// rng is a deterministic random stream for the given parts.
func (g *Generator) rng(parts ...any) *rand.Rand {
	a := g.h(parts...)
	return rand.New(rand.NewPCG(a, mix(a+0x9e3779b97f4a7c15)))
}

// uuidFrom formats 128 hashed bits as a lower-case version-4 UUID.
func uuidFrom(a, b uint64) string {
	a = a&^0xf000 | 0x4000     // version 4
	b = b&^(0xc<<60) | 0x8<<60 // variant 10
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

func (g *Generator) uuid(parts ...any) string {
	a := g.h(parts...)
	return uuidFrom(a, mix(a^0x5bd1e995))
}

// pick returns one of xs, weighted by ws.
func pick[T any](r *rand.Rand, xs []T, ws []float64) T {
	var total float64
	for _, w := range ws {
		total += w
	}
	x := r.Float64() * total
	for i, w := range ws {
		if x < w {
			return xs[i]
		}
		x -= w
	}
	return xs[len(xs)-1]
}

func lognormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(r.NormFloat64()*sigma)
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
