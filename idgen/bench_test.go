package idgen

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkNext uses the real clock, so the layout's 4096 IDs per
// millisecond caps the rate once Next is fast enough; ids/ms shows how close
// a generator gets to that cap.
func BenchmarkNext(b *testing.B) {
	b.Run("single", func(b *testing.B) {
		g := newBenchGenerator(b, Config{})
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if _, err := g.Next(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		reportIDsPerMilli(b, n)
	})
	b.Run("parallel", func(b *testing.B) {
		g := newBenchGenerator(b, Config{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := g.Next(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportIDsPerMilli(b, b.N)
	})
}

// BenchmarkNextUncapped gives every call its own millisecond, so the
// sequence never runs out and the figures show the cost of Next itself,
// including contention on its mutex, rather than the layout's cap.
func BenchmarkNextUncapped(b *testing.B) {
	newGen := func(b *testing.B) *Generator {
		var ms atomic.Int64
		return newBenchGenerator(b, Config{
			Now: func() time.Time {
				return DefaultEpoch.Add(time.Duration(ms.Add(1)) * time.Millisecond)
			},
		})
	}
	b.Run("single", func(b *testing.B) {
		g := newGen(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := g.Next(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		g := newGen(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := g.Next(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func newBenchGenerator(b *testing.B, cfg Config) *Generator {
	b.Helper()
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func reportIDsPerMilli(b *testing.B, n int) {
	if ms := float64(b.Elapsed()) / float64(time.Millisecond); ms > 0 {
		b.ReportMetric(float64(n)/ms, "ids/ms")
	}
}
