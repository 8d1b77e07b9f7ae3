package main

// Every template's Parquet against DuckDB's zstd rewrite of the same rows
// (issue 26): tally's report writer writes n rows of each template part
// (internal/benchrows.Template, shaped like a real report), DuckDB reads the
// file and writes it again with COPY … (FORMAT parquet, COMPRESSION zstd),
// and the ratio of the two sizes is printed beside its target (≤ 1.0).

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"tally/internal/benchfig"
	"tally/internal/benchrows"
	"tally/report"
)

// TemplateSize is one template part's two file sizes.
type TemplateSize struct {
	Template string  `json:"template"`
	Rows     int64   `json:"rows"`
	Tally    int64   `json:"tally_bytes"`
	DuckDB   int64   `json:"duckdb_bytes"`
	Ratio    float64 `json:"ratio"`
	Pass     bool    `json:"pass"`
}

func benchTemplates(n int64, work string) ([]TemplateSize, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.Exec("SET threads = 1; SET preserve_insertion_order = true"); err != nil {
		return nil, err
	}
	var out []TemplateSize
	for _, tpl := range report.BuiltIns {
		for pi, part := range tpl.Parts {
			name := tpl.Name + part.Suffix
			fmt.Fprintf(os.Stderr, "bench duckdb: %s, %d rows…\n", name, n)
			tallyFile := filepath.Join(work, fmt.Sprintf("%s-%d-tally.parquet", tpl.Slug, pi))
			duckFile := filepath.Join(work, fmt.Sprintf("%s-%d-duckdb.parquet", tpl.Slug, pi))
			f, err := os.Create(tallyFile)
			if err != nil {
				return nil, err
			}
			w, err := report.New(part.Columns, report.Outputs{Parquet: f})
			if err == nil {
				err = benchrows.Template(part.Columns, n, w.Write)
			}
			if err == nil {
				err = w.Close()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("%s: tally: %w", name, err)
			}
			if _, err := db.Exec(fmt.Sprintf("COPY (SELECT * FROM read_parquet('%s')) TO '%s' (FORMAT parquet, COMPRESSION zstd)", tallyFile, duckFile)); err != nil {
				return nil, fmt.Errorf("%s: duckdb: %w", name, err)
			}
			ts, _ := os.Stat(tallyFile)
			ds, _ := os.Stat(duckFile)
			r := float64(ts.Size()) / float64(ds.Size())
			out = append(out, TemplateSize{Template: name, Rows: n, Tally: ts.Size(), DuckDB: ds.Size(), Ratio: r, Pass: r <= 1.0})
			os.Remove(tallyFile)
			os.Remove(duckFile)
		}
	}
	return out, nil
}

func printTemplates(sizes []TemplateSize) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "template Parquet at 1M rows\ttally bytes\tDuckDB zstd bytes\ttally ÷ DuckDB\ttarget\t")
	for _, s := range sizes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f×\t≤ 1.0×\t%s\n", s.Template, s.Tally, s.DuckDB, s.Ratio, benchfig.Mark(s.Pass))
	}
	tw.Flush()
}
