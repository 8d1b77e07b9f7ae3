package report

import (
	"bytes"
	"fmt"
	"testing"

	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
)

// The writer's own zstd codec must write what parquet-go's fastest zstd writes,
// page after page with one encoder, and read back what it wrote.
func TestTheWritersZstdCodecWritesTheSameBytesAsParquetGosAndRoundTrips(t *testing.T) {
	ours, err := newZstdCodec()
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	theirs := &pqzstd.Codec{Level: pqzstd.SpeedFastest}
	var src []byte
	for i := range 60000 {
		src = fmt.Appendf(src, "Customer %05d Logistics GmbH,%d;", i%977, i*7%600)
	}
	for _, page := range [][]byte{src, src[:1000], src[5000:300000], nil} {
		got, err := ours.Encode(nil, page)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := theirs.Encode(nil, page)
		if !bytes.Equal(got, want) {
			t.Fatalf("a %d-byte page compresses to %d bytes, parquet-go's codec to %d", len(page), len(got), len(want))
		}
		back, err := ours.Decode(nil, got)
		if err != nil || !bytes.Equal(back, page) {
			t.Fatalf("a %d-byte page does not round-trip: %v", len(page), err)
		}
	}
}
