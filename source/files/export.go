package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"

	"tally/model"
	"tally/periods"
	"tally/source"
	"tally/storage"
)

// Formats are the landing zone's file formats.
var Formats = []string{"parquet", "csv", "jsonl"}

// Export writes src's day into out in the landing layout, one file per entity
// and region, then the manifest last: a template a partner can copy, and the
// way every format's round trip is tested.
func Export(ctx context.Context, src source.Source, day periods.Period, out storage.Store, format string) (*Manifest, error) {
	if format != "parquet" && format != "csv" && format != "jsonl" {
		return nil, fmt.Errorf("format %q: parquet, csv or jsonl", format)
	}
	partners, err := src.Partners(ctx, day)
	if err != nil {
		return nil, err
	}
	rows := map[string]map[string][]reflect.Value{} // entity → region → rows
	add := func(entity, region string, slice any) {
		v := reflect.ValueOf(slice)
		if rows[entity] == nil {
			rows[entity] = map[string][]reflect.Value{}
		}
		for i := 0; i < v.Len(); i++ {
			rows[entity][region] = append(rows[entity][region], v.Index(i))
		}
	}
	partnerRegions := map[string]map[string]bool{}
	err = src.Customers(ctx, day, func(cd *source.CustomerDay) error {
		if cd.Customer.CustomerID == "" {
			return nil
		}
		add("customers", cd.Region, []model.Customer{cd.Customer})
		add("subscriptions", cd.Region, cd.Subscriptions)
		add("orders", cd.Region, cd.Orders)
		add("clusters", cd.Region, cd.Clusters)
		add("servers", cd.Region, cd.Servers)
		add("users", cd.Region, cd.Users)
		add("devices", cd.Region, cd.Devices)
		add("numbers", cd.Region, cd.Numbers)
		var calls []model.CallLeg
		if err := cd.EachCall(func(l model.CallLeg) error { calls = append(calls, l); return nil }); err != nil {
			return err
		}
		add("calls", cd.Region, calls)
		if partnerRegions[cd.Customer.PartnerID] == nil {
			partnerRegions[cd.Customer.PartnerID] = map[string]bool{}
		}
		partnerRegions[cd.Customer.PartnerID][cd.Region] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, p := range partners {
		for _, region := range model.Regions {
			if partnerRegions[p.PartnerID][region] {
				add("partners", region, []model.Partner{p})
			}
		}
	}
	m := &Manifest{Day: day.ID()}
	for _, entity := range Entities {
		regions := make([]string, 0, len(rows[entity]))
		for r := range rows[entity] {
			regions = append(regions, r)
		}
		sort.Strings(regions)
		for _, region := range regions {
			b, err := encode(Schemas[entity], rows[entity][region], format)
			if err != nil {
				return nil, fmt.Errorf("export %s %s: %w", entity, region, err)
			}
			key := FileKey(entity, region, day, "part-0."+format)
			if _, err := out.Put(ctx, key, bytes.NewReader(b)); err != nil {
				return nil, err
			}
			sum := sha256.Sum256(b)
			m.Files = append(m.Files, ManifestFile{Path: key, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if _, err := out.Put(ctx, ManifestKey(day), bytes.NewReader(append(b, '\n'))); err != nil {
		return nil, err
	}
	return m, nil
}

// encode writes rows in one format.
func encode(sc *schema, rows []reflect.Value, format string) ([]byte, error) {
	var buf bytes.Buffer
	switch format {
	case "csv":
		w := csv.NewWriter(&buf)
		header := make([]string, len(sc.columns))
		for i, c := range sc.columns {
			header[i] = c.Name
		}
		w.Write(header)
		rec := make([]string, len(sc.columns))
		for _, v := range rows {
			for i, c := range sc.columns {
				rec[i] = c.format(v)
			}
			w.Write(rec)
		}
		w.Flush()
		return buf.Bytes(), w.Error()
	case "jsonl":
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		for _, v := range rows {
			obj := make(map[string]any, len(sc.columns))
			for _, c := range sc.columns {
				obj[c.Name] = c.jsonValue(v)
			}
			if err := enc.Encode(obj); err != nil {
				return nil, err
			}
		}
		return buf.Bytes(), nil
	}
	err := sc.writeParquet(&buf, rows)
	return buf.Bytes(), err
}
