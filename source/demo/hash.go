package demo

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// h hashes the seed and parts into 64 bits: the root of every value the demo
// estate has, so any entity can be derived directly for any day.
// The bytes hashed are fmt.Fprint's of the seed and each part, NUL-separated
// (so the estate stays what it was), formatted without fmt for the common
// kinds: this is the hottest path of a demo sync.
func (g *Generator) h(parts ...any) uint64 {
	var buf [128]byte
	b := strconv.AppendUint(buf[:0], g.seed, 10)
	for _, p := range parts {
		b = append(b, 0)
		switch v := p.(type) {
		case string:
			b = append(b, v...)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case uint64:
			b = strconv.AppendUint(b, v, 10)
		case bool:
			b = strconv.AppendBool(b, v)
		default:
			b = fmt.Append(b, v)
		}
	}
	// FNV-1a, 64 bits (hash/fnv's, without its allocation).
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix(h)
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

// padded is prefix then v in base (10 or 16, lower case) with at least width
// digits, zero-padded: fmt's "%0*d" and "%0*x", without fmt (the demo makes
// millions of ids a day at scale).
func padded(prefix string, v uint64, base, width int) string {
	var buf [64]byte
	b := append(buf[:0], prefix...)
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], v, base)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return string(append(b, d...))
}

// uuidFrom formats 128 hashed bits as a lower-case version-4 UUID.
// (8-4-4-4-12 hex digits of a then b; hex.Encode, not fmt: the demo makes
// millions of ids a day at scale).
func uuidFrom(a, b uint64) string {
	a, b = uuidBits(a, b)
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], a)
	binary.BigEndian.PutUint64(raw[8:], b)
	var s [36]byte
	hex.Encode(s[0:8], raw[0:4])
	hex.Encode(s[9:13], raw[4:6])
	hex.Encode(s[14:18], raw[6:8])
	hex.Encode(s[19:23], raw[8:10])
	hex.Encode(s[24:36], raw[10:16])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return string(s[:])
}

// uuidBits sets the version and variant bits of a UUID's two halves.
func uuidBits(a, b uint64) (uint64, uint64) {
	return a&^0xf000 | 0x4000, b&^(0xc<<60) | 0x8<<60
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
