package storage

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// silent is a store whose calls hang until their context ends, like a TCP
// connection that stopped answering; its Put reads its source at the pace given.
type silent struct {
	Store
	readEvery time.Duration // Put: the store reads the source this often; 0: never
}

func (s *silent) Stat(ctx context.Context, key string) (Object, error) {
	<-ctx.Done()
	return Object{}, ctx.Err()
}

func (s *silent) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	buf := make([]byte, 1)
	for {
		if s.readEvery == 0 {
			<-ctx.Done()
			return Object{}, ctx.Err()
		}
		select {
		case <-ctx.Done():
			return Object{}, ctx.Err()
		case <-time.After(s.readEvery):
		}
		if _, err := r.Read(buf); err == io.EOF {
			return Object{Key: key}, nil
		} else if err != nil {
			return Object{}, err
		}
	}
}

func TestAControlCallOnASilentConnectionEndsAtTheRequestTimeoutNamingTheSetting(t *testing.T) {
	s := WithTimeouts(&silent{}, Timeouts{Request: 50 * time.Millisecond, Idle: time.Second})
	start := time.Now()
	_, err := s.Stat(context.Background(), "_leases/x.json")
	var te *ErrTimeout
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "storage.request_timeout") || time.Since(start) > time.Second {
		t.Fatalf("Stat on a silent store: %v after %s, want a request timeout", err, time.Since(start))
	}
}

func TestAnUploadIsCutOnlyWhenNoByteMovesForTheIdleTimeout(t *testing.T) {
	// The store keeps taking bytes, slowly: 20 ms apart, for 300 ms in all — far
	// past the 100 ms idle timeout, never idle that long.
	moving := WithTimeouts(&silent{readEvery: 20 * time.Millisecond}, Timeouts{Request: time.Second, Idle: 100 * time.Millisecond})
	if _, err := moving.Put(context.Background(), "big", strings.NewReader(strings.Repeat("x", 15))); err != nil {
		t.Fatalf("a slow upload that keeps moving was cut: %v", err)
	}
	// A producer that takes long to write does not count as idle either.
	slowProducer := &slowReader{r: strings.NewReader("xx"), wait: 250 * time.Millisecond}
	if _, err := moving.Put(context.Background(), "late", slowProducer); err != nil {
		t.Fatalf("an upload waiting for its producer was cut: %v", err)
	}
	// The store stops taking bytes: cut after the idle timeout.
	stuck := WithTimeouts(&silent{}, Timeouts{Request: time.Second, Idle: 100 * time.Millisecond})
	start := time.Now()
	_, err := stuck.Put(context.Background(), "big", strings.NewReader("xxx"))
	if err == nil || !strings.Contains(err.Error(), "storage.idle_timeout") || time.Since(start) > time.Second {
		t.Fatalf("a stuck upload: %v after %s, want an idle timeout", err, time.Since(start))
	}
}

type slowReader struct {
	r    io.Reader
	wait time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.wait)
	return s.r.Read(p[:1])
}
