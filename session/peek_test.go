package session

import (
	"context"
	"errors"
	"testing"
)

func TestPeekReadsWithoutWriting(t *testing.T) {
	mem := NewMemoryStore()
	a, _ := newAffinity(t, mem)
	if dc, _, found, ok := a.Peek("www.example.", client); !ok || found || dc != "" {
		t.Fatalf("Peek of a new client: %q found=%v ok=%v; want nothing found", dc, found, ok)
	}
	if _, err := mem.Get(context.Background(), Key{Service: "www.example.", Client: client}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Peek the store holds %v; want nothing", err)
	}
	if dc, _, ok := a.Sticky("www.example.", client, "dc-a"); !ok || dc != "dc-a" {
		t.Fatalf("Sticky: %q %v", dc, ok)
	}
	if dc, _, found, ok := a.Peek("www.example.", client); !ok || !found || dc != "dc-a" {
		t.Errorf("Peek of a pinned client: %q found=%v ok=%v; want dc-a", dc, found, ok)
	}
}
