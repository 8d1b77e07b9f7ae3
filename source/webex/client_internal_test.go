package webex

import (
	"context"
	"sync"
	"testing"
	"time"
)

// gateClock sleeps only when the test lets it: each Sleep reports its
// duration, then waits for release, and the time moves on by that much.
type gateClock struct {
	mu       sync.Mutex
	now      time.Time
	sleeping chan time.Duration
	release  chan struct{}
}

func (c *gateClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *gateClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeping <- d
	<-c.release
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

// A request already waiting out a 429's Retry-After when a second 429 pushes
// the pause further wakes at the later deadline, not the one it went to sleep on.
func TestEveryRequestWaitingOnA429PauseWakesAtTheLatestDeadline(t *testing.T) {
	clk := &gateClock{now: time.Date(2026, 11, 22, 0, 5, 0, 0, time.UTC), sleeping: make(chan time.Duration), release: make(chan struct{})}
	c := &Client{Clock: clk}
	c.pause(time.Second)
	done := make(chan error, 1)
	go func() { done <- c.wait(context.Background()) }()
	if d := <-clk.sleeping; d != time.Second {
		t.Fatalf("first sleep %s, want the first Retry-After, 1s", d)
	}
	c.pause(10 * time.Second) // another request's 429, answered meanwhile
	clk.release <- struct{}{}
	select {
	case d := <-clk.sleeping:
		if d != 9*time.Second {
			t.Fatalf("slept on for %s, want the 9s left of the later pause", d)
		}
		clk.release <- struct{}{}
	case err := <-done:
		t.Fatalf("the waiting request went at the old deadline (%v), 9s before the later 429's", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
