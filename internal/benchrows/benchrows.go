// Package benchrows owns the benchmark table: 15 report columns of mixed
// types with realistic cardinalities, generated row by row without
// allocating, and the same rows as DuckDB SQL (the bench compares the two).
package benchrows

import (
	"fmt"

	"tally/report"
)

// Columns of the benchmark table: 15 mixed columns, like a report's.
var Columns = []report.Column{
	{Header: "Partner Name", Dict: true}, {Header: "Customer Name"}, {Header: "Org ID"}, {Header: "Location", Dict: true},
	{Header: "Subscription ID"}, {Header: "License Type", Dict: true}, {Header: "Entitled", Kind: report.Int},
	{Header: "Consumed", Kind: report.Int}, {Header: "Total Calls", Kind: report.Int}, {Header: "Call Minutes", Kind: report.Int},
	{Header: "Assigned Percent", Kind: report.Float}, {Header: "Jitter Ms", Kind: report.Float},
	{Header: "Active", Kind: report.Bool}, {Header: "External ID"}, {Header: "Compliance", Dict: true},
}

// Generate emits n rows (the slice is reused between calls).
func Generate(n int64, emit func([]report.Value) error) error {
	// Value pools: realistic cardinalities, no allocation per row.
	pool := func(format string, k int) []report.Value {
		vs := make([]report.Value, k)
		for i := range vs {
			vs[i] = report.S(fmt.Sprintf(format, i))
		}
		return vs
	}
	partners := pool("Partner %d Communications", 3)
	customers := pool("Customer %05d Logistics GmbH", 10000)
	orgs := pool("0f%06d-1c2d-4e5f-8a9b-0c1d2e3f4a5b", 10000)
	locations := pool("Office %d, Zürich", 40)
	subs := pool("Sub%08d", 20000)
	types := []report.Value{report.S("Knowledge Worker"), report.S("Common Area"), report.S("TelePresence")}
	states := []report.Value{report.S("OK"), report.S("Over"), report.S("Under")}
	externals := pool("EXT-%07d", 2000)
	row := make([]report.Value, len(Columns))
	for i := int64(0); i < n; i++ {
		k := int(i)
		row[0] = partners[k%3]
		row[1] = customers[k%10000]
		row[2] = orgs[k%10000]
		row[3] = locations[k%40]
		row[4] = subs[k%20000]
		row[5] = types[k%3]
		row[6] = report.I(int64(k % 500))
		row[7] = report.I(int64(k*7) % 600)
		row[8] = report.I(int64(k % 1000))
		row[9] = report.I(int64(k*3) % 50000)
		row[10] = report.F(float64(k%1000) / 10)
		row[11] = report.F(float64(k%3000) / 7)
		row[12] = report.B(k%5 != 0)
		if k%4 == 0 {
			row[13] = report.Null()
		} else {
			row[13] = externals[k%2000]
		}
		row[14] = states[k%3]
		if err := emit(row); err != nil {
			return err
		}
	}
	return nil
}

// SQL is the same n rows as a DuckDB query, column for column (snake_case
// names, the same values and types; Go and DuckDB divide doubles alike).
func SQL(n int64) string {
	return fmt.Sprintf(`SELECT
  'Partner ' || (k %% 3) || ' Communications' AS partner_name,
  printf('Customer %%05d Logistics GmbH', k %% 10000) AS customer_name,
  printf('0f%%06d-1c2d-4e5f-8a9b-0c1d2e3f4a5b', k %% 10000) AS org_id,
  'Office ' || (k %% 40) || ', Zürich' AS location,
  printf('Sub%%08d', k %% 20000) AS subscription_id,
  ['Knowledge Worker', 'Common Area', 'TelePresence'][k %% 3 + 1] AS license_type,
  (k %% 500)::BIGINT AS entitled,
  ((k * 7) %% 600)::BIGINT AS consumed,
  (k %% 1000)::BIGINT AS total_calls,
  ((k * 3) %% 50000)::BIGINT AS call_minutes,
  (k %% 1000)::DOUBLE / 10 AS assigned_percent,
  (k %% 3000)::DOUBLE / 7 AS jitter_ms,
  (k %% 5 != 0) AS active,
  CASE WHEN k %% 4 = 0 THEN NULL ELSE printf('EXT-%%07d', k %% 2000) END AS external_id,
  ['OK', 'Over', 'Under'][k %% 3 + 1] AS compliance
FROM range(%d) t(k)`, n)
}
