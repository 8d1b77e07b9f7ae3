package files

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"slices"
	"unsafe"

	"tally/model"
	"tally/periods"
	"tally/pq"
	"tally/source"
	"tally/storage"
)

// Formats are the landing zone's file formats.
var Formats = []string{"parquet", "csv", "jsonl"}

// exportPartRows bounds one exported file: a table past it goes on in
// part-1, part-2, … (as tally's own tables do), so no writer's index grows
// with a region's day.
var exportPartRows int64 = pq.RowGroupRows

// Export writes src's day into out in the landing layout as the source yields
// it, a customer at a time: for each entity and region part-<n>.<format>
// files (sorted by customer_id, as tally's tables are), then the manifest
// last, listing every file with its size and sha256. A template a partner can
// copy, and the way every format's round trip is tested. Memory stays flat
// whatever the day holds: only one region's files are open at once.
func Export(ctx context.Context, src source.Source, day periods.Period, out storage.Store, format string) (*Manifest, error) {
	if !slices.Contains(Formats, format) {
		return nil, fmt.Errorf("format %q: parquet, csv or jsonl", format)
	}
	partners, err := src.Partners(ctx, day)
	if err != nil {
		return nil, err
	}
	x := &exporter{ctx: ctx, out: out, day: day, format: format, open: map[string]*exportFile{}, parts: map[string]int{}}
	defer x.abort()
	partnerRegions := map[string]map[string]bool{}
	region := ""
	err = src.Customers(ctx, day, func(cd *source.CustomerDay) error {
		if cd.Customer.CustomerID == "" {
			return nil
		}
		if cd.Region != region {
			if err := x.closeAll(); err != nil {
				return err
			}
			region = cd.Region
		}
		if partnerRegions[cd.Customer.PartnerID] == nil {
			partnerRegions[cd.Customer.PartnerID] = map[string]bool{}
		}
		partnerRegions[cd.Customer.PartnerID][cd.Region] = true
		err := errorsOf(
			writeAll(x, "customers", cd.Region, []model.Customer{cd.Customer}),
			writeAll(x, "subscriptions", cd.Region, cd.Subscriptions),
			writeAll(x, "orders", cd.Region, cd.Orders),
			writeAll(x, "clusters", cd.Region, cd.Clusters),
			writeAll(x, "servers", cd.Region, cd.Servers),
			writeAll(x, "users", cd.Region, cd.Users),
			writeAll(x, "devices", cd.Region, cd.Devices),
			writeAll(x, "numbers", cd.Region, cd.Numbers))
		if err != nil {
			return err
		}
		return cd.EachCall(func(l model.CallLeg) error { return x.write("calls", cd.Region, unsafe.Pointer(&l)) })
	})
	if err == nil {
		err = x.closeAll()
	}
	if err != nil {
		return nil, err
	}
	for _, r := range model.Regions {
		for i := range partners {
			if partnerRegions[partners[i].PartnerID][r] {
				if err := x.write("partners", r, unsafe.Pointer(&partners[i])); err != nil {
					return nil, err
				}
			}
		}
		if err := x.closeAll(); err != nil {
			return nil, err
		}
	}
	m := &Manifest{Day: day.ID(), Files: x.done}
	slices.SortFunc(m.Files, func(a, b ManifestFile) int { return cmpString(a.Path, b.Path) })
	b, _ := json.MarshalIndent(m, "", "  ")
	if _, err := out.Put(ctx, ManifestKey(day), bytes.NewReader(append(b, '\n'))); err != nil {
		return nil, err
	}
	return m, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func errorsOf(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func writeAll[T any](x *exporter, entity, region string, rows []T) error {
	for i := range rows {
		if err := x.write(entity, region, unsafe.Pointer(&rows[i])); err != nil {
			return err
		}
	}
	return nil
}

// exporter holds the files being written (one region's at a time).
type exporter struct {
	ctx    context.Context
	out    storage.Store
	day    periods.Period
	format string
	open   map[string]*exportFile // entity → its current file
	parts  map[string]int         // entity/region → the next part's number
	done   []ManifestFile
}

// exportFile is one file streaming into the landing zone: its bytes go through
// a pipe to the store's Put, hashed and counted on the way.
type exportFile struct {
	key  string
	pw   *io.PipeWriter
	buf  *bufio.Writer
	rows rowWriter
	n    int64
	hash hash.Hash
	size int64
	done chan struct{}
	err  error
}

func (f *exportFile) Write(p []byte) (int, error) {
	n, err := f.pw.Write(p)
	f.hash.Write(p[:n])
	f.size += int64(n)
	return n, err
}

func (x *exporter) write(entity, region string, row unsafe.Pointer) error {
	f := x.open[entity]
	if f == nil {
		id := entity + "/" + region
		f = &exportFile{key: FileKey(entity, region, x.day, fmt.Sprintf("part-%d.%s", x.parts[id], x.format)), hash: sha256.New(), done: make(chan struct{})}
		x.parts[id]++
		pr, pw := io.Pipe()
		f.pw, f.buf = pw, bufio.NewWriterSize(nil, 64<<10)
		f.buf.Reset(f)
		go func() {
			defer close(f.done)
			_, f.err = x.out.Put(x.ctx, f.key, pr)
			pr.CloseWithError(f.err) // unblocks the writer if Put stopped early
		}()
		sch := Schemas[entity]
		switch x.format {
		case "parquet":
			f.rows = sch.parquetWriter(f.buf)
		case "csv":
			f.rows = newCSVRows(f.buf, sch)
		default:
			f.rows = &jsonRows{enc: json.NewEncoder(f.buf), sch: sch, cells: make([]cell, len(sch.columns))}
		}
		x.open[entity] = f
	}
	if err := f.rows.write(row); err != nil {
		return fmt.Errorf("export %s: %w", f.key, err)
	}
	if f.n++; f.n == exportPartRows {
		return x.finish(entity)
	}
	return nil
}

// finish publishes entity's open file and lists it for the manifest.
func (x *exporter) finish(entity string) error {
	f := x.open[entity]
	delete(x.open, entity)
	err := f.rows.close()
	if err == nil {
		err = f.buf.Flush()
	}
	if err != nil {
		f.pw.CloseWithError(err)
		<-f.done
		return fmt.Errorf("export %s: %w", f.key, err)
	}
	f.pw.Close()
	<-f.done
	if f.err != nil {
		return fmt.Errorf("export %s: %w", f.key, f.err)
	}
	x.done = append(x.done, ManifestFile{Path: f.key, Size: f.size, SHA256: hex.EncodeToString(f.hash.Sum(nil))})
	return nil
}

func (x *exporter) closeAll() error {
	for _, e := range Entities {
		if x.open[e] != nil {
			if err := x.finish(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// abort stops every file still open: nothing of them is published.
func (x *exporter) abort() {
	for e, f := range x.open {
		f.pw.CloseWithError(fmt.Errorf("export stopped"))
		<-f.done
		delete(x.open, e)
	}
}

// csvRows writes rows as CSV under a header of the contract's column names.
type csvRows struct {
	w     *csv.Writer
	sch   *schema
	cells []cell
	rec   []string
}

func newCSVRows(w io.Writer, sch *schema) *csvRows {
	c := &csvRows{w: csv.NewWriter(w), sch: sch, cells: make([]cell, len(sch.columns)), rec: make([]string, len(sch.columns))}
	for i, col := range sch.columns {
		c.rec[i] = col.Name
	}
	c.w.Write(c.rec)
	return c
}

func (c *csvRows) write(p unsafe.Pointer) error {
	c.sch.cellsOf(p, c.cells)
	for i, col := range c.sch.columns {
		c.rec[i] = col.text(c.cells[i])
	}
	return c.w.Write(c.rec)
}

func (c *csvRows) close() error {
	c.w.Flush()
	return c.w.Error()
}

// jsonRows writes rows as JSON lines.
type jsonRows struct {
	enc   *json.Encoder
	sch   *schema
	cells []cell
}

func (j *jsonRows) write(p unsafe.Pointer) error {
	j.sch.cellsOf(p, j.cells)
	obj := make(map[string]any, len(j.sch.columns))
	for i, col := range j.sch.columns {
		obj[col.Name] = col.jsonValue(j.cells[i])
	}
	j.enc.SetEscapeHTML(false)
	return j.enc.Encode(obj)
}

func (j *jsonRows) close() error { return nil }
