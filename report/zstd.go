package report

import (
	"github.com/klauspost/compress/zstd"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
)

// zstdCodec is the Parquet zstd codec at its fastest level (report files are
// written once, read many times, and the writer's CPU budget is tight, SPEC §10),
// holding one encoder for its writer's life. parquet-go's own codec keeps its
// encoders in a sync.Pool: every garbage collection empties the pool and the next
// page builds a new encoder with a fresh 8 MiB history, so a writer's peak RSS
// depended on when collections happened to fall (44 or 53 MiB for the same
// 20M-row report, run to run).
type zstdCodec struct {
	enc *zstd.Encoder
}

func newZstdCodec() (*zstdCodec, error) {
	// The options of parquet-go's codec, so the bytes written are the same.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false), zstd.WithAllLitEntropyCompression(true))
	if err != nil {
		return nil, err
	}
	return &zstdCodec{enc: enc}, nil
}

func (c *zstdCodec) String() string                            { return "ZSTD" }
func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

// Decode is never called by a writer; it reads like any zstd page.
func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) {
	return zstdReader.Decode(dst, src)
}

var zstdReader = &pqzstd.Codec{}

// Close releases the encoder.
func (c *zstdCodec) Close() error { return c.enc.Close() }
