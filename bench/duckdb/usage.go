package main

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// usageDay is the day the license-usage comparison syncs and computes.
const usageDay = "2026-11-21"

// usageRegions are tally's regions (each computed from its own snapshot).
var usageRegions = []string{"US", "CA", "EU", "UAE"}

// usageSQL is SPEC §6 as DuckDB SQL over one region's snapshot: the same four
// tables license-usage writes (usage/license, cluster, subscription, customer).
// {inv} is the region's inventory files (a format with the entity), {day} the
// day. sameUsage proves it computes what tally computes, row for row.
const usageSQL = `
CREATE OR REPLACE TEMP TABLE users AS SELECT * FROM read_parquet('{inv:users}');
CREATE OR REPLACE TEMP TABLE devices AS SELECT device_id, customer_id, cluster_id, user_id, device_type, file_row_number AS n FROM read_parquet('{inv:devices}', file_row_number = true);
CREATE OR REPLACE TEMP TABLE subs AS SELECT * FROM read_parquet('{inv:subscriptions}');
CREATE OR REPLACE TEMP TABLE orders AS SELECT * FROM read_parquet('{inv:orders}');
CREATE OR REPLACE TEMP TABLE customers AS SELECT customer_id, partner_id FROM read_parquet('{inv:customers}');
-- the customers of the day: any table's (as tally's merge of the snapshot's streams)
CREATE OR REPLACE TEMP TABLE keys AS
  SELECT k.customer_id, coalesce(c.partner_id, (SELECT partner_id FROM orders o WHERE o.customer_id = k.customer_id LIMIT 1), '') AS partner_id
  FROM (SELECT customer_id FROM customers UNION SELECT customer_id FROM subs UNION SELECT customer_id FROM orders
        UNION SELECT customer_id FROM read_parquet('{inv:clusters}') UNION SELECT customer_id FROM read_parquet('{inv:servers}')
        UNION SELECT customer_id FROM users UNION SELECT customer_id FROM devices) k
  LEFT JOIN customers c USING (customer_id);
-- the subscription a customer's consumption counts against: its active calling
-- subscription (latest started, then highest subscriber id), else its trial
CREATE OR REPLACE TEMP TABLE attributed AS
  SELECT DISTINCT ON (customer_id) customer_id, subscription_id, subscriber_id FROM (
    SELECT *, CASE WHEN NOT is_trial AND status = 'active' THEN 0 WHEN is_trial AND status = 'trial' THEN 1 END AS kind FROM subs
    WHERE product IN ('calling', 'ucm-cloud', 'dedicated-instance') AND end_date >= DATE '{day}')
  WHERE kind IS NOT NULL ORDER BY customer_id, kind, start_date DESC, subscriber_id DESC;
CREATE OR REPLACE TEMP TABLE owned AS
  SELECT *, row_number() OVER (PARTITION BY customer_id, user_id ORDER BY device_id) AS rn
  FROM devices WHERE device_type <> 'telepresence' AND user_id IS NOT NULL;
CREATE OR REPLACE TEMP TABLE uses AS
  SELECT u.customer_id, u.cluster_id, 'user' AS entity_type, u.user_id AS entity_id, 'knowledge_worker' AS license_type FROM users u
  WHERE u.has_extension_mobility OR (u.has_mobile_client AND u.has_directory_profile)
     OR EXISTS (SELECT 1 FROM owned o WHERE o.customer_id = u.customer_id AND o.user_id = u.user_id)
  UNION ALL -- devices whose owner is not a user row count as that owner's, on the first device's cluster
  SELECT customer_id, arg_min(cluster_id, n), 'user', user_id, 'knowledge_worker' FROM owned o
  WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.customer_id = o.customer_id AND u.user_id = o.user_id) GROUP BY customer_id, user_id
  UNION ALL
  SELECT customer_id, cluster_id, 'device', device_id, 'common_area' FROM owned WHERE rn > 10
  UNION ALL
  SELECT customer_id, cluster_id, 'device', device_id, CASE WHEN device_type = 'telepresence' THEN 'telepresence' ELSE 'common_area' END
  FROM devices WHERE device_type = 'telepresence' OR user_id IS NULL;
CREATE OR REPLACE TEMP TABLE consumed AS SELECT customer_id, license_type, count(*) AS n FROM uses GROUP BY ALL;
CREATE OR REPLACE TEMP TABLE entitled AS SELECT customer_id, subscriber_id, license_type, sum(quantity) AS n FROM orders GROUP BY ALL;
CREATE OR REPLACE TEMP TABLE lts AS SELECT * FROM (VALUES ('knowledge_worker', 0), ('common_area', 1), ('telepresence', 2)) t(license_type, i);
COPY (SELECT u.customer_id, a.subscription_id, a.subscriber_id, u.cluster_id, u.entity_type, u.entity_id, u.license_type
      FROM uses u LEFT JOIN attributed a USING (customer_id) ORDER BY u.customer_id)
  TO '{out:license}' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT cl.cluster_id, coalesce(c.fqdn, '') AS fqdn, coalesce(p.host, '') AS publisher, cl.customer_id,
             count(*) FILTER (WHERE u.license_type = 'knowledge_worker') AS knowledge_worker,
             count(*) FILTER (WHERE u.license_type = 'common_area') AS common_area,
             count(*) FILTER (WHERE u.license_type = 'telepresence') AS telepresence
      FROM (SELECT customer_id, cluster_id FROM read_parquet('{inv:clusters}') UNION SELECT customer_id, cluster_id FROM uses WHERE cluster_id IS NOT NULL) cl
      LEFT JOIN uses u ON u.customer_id = cl.customer_id AND u.cluster_id = cl.cluster_id
      LEFT JOIN (SELECT DISTINCT ON (customer_id, cluster_id) * FROM read_parquet('{inv:clusters}')) c ON c.customer_id = cl.customer_id AND c.cluster_id = cl.cluster_id
      LEFT JOIN (SELECT customer_id, cluster_id, last(host ORDER BY file_row_number) AS host FROM read_parquet('{inv:servers}', file_row_number = true)
                 WHERE role = 'publisher' GROUP BY ALL) p ON p.customer_id = cl.customer_id AND p.cluster_id = cl.cluster_id
      GROUP BY ALL ORDER BY cl.customer_id, cl.cluster_id)
  TO '{out:cluster}' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT s.subscription_id, s.subscriber_id, s.customer_id, k.partner_id, l.license_type, coalesce(e.n, 0) AS entitled,
             CASE WHEN s.subscriber_id = a.subscriber_id THEN coalesce(c.n, 0) ELSE 0 END AS consumed,
             CASE WHEN consumed > entitled THEN 'over' WHEN consumed < {under} * entitled THEN 'under' ELSE 'ok' END AS compliance
      FROM subs s CROSS JOIN lts l JOIN keys k USING (customer_id) LEFT JOIN attributed a USING (customer_id)
      LEFT JOIN entitled e ON e.customer_id = s.customer_id AND e.subscriber_id = s.subscriber_id AND e.license_type = l.license_type
      LEFT JOIN consumed c ON c.customer_id = s.customer_id AND c.license_type = l.license_type
      WHERE s.product IN ('calling', 'ucm-cloud', 'dedicated-instance') ORDER BY s.customer_id, s.subscription_id, s.subscriber_id, l.i)
  TO '{out:subscription}' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT k.customer_id, k.partner_id, a.subscriber_id, l.license_type, coalesce(e.n, 0) AS entitled, coalesce(c.n, 0) AS consumed
      FROM keys k CROSS JOIN lts l LEFT JOIN attributed a USING (customer_id)
      LEFT JOIN entitled e ON e.customer_id = k.customer_id AND e.subscriber_id = a.subscriber_id AND e.license_type = l.license_type
      LEFT JOIN consumed c ON c.customer_id = k.customer_id AND c.license_type = l.license_type
      ORDER BY k.customer_id, l.i)
  TO '{out:customer}' (FORMAT parquet, COMPRESSION zstd);
`

// usageGrains are the four tables, as tally names them.
var usageGrains = []string{"license", "cluster", "subscription", "customer"}

// usageScript fills usageSQL in for one region of the data directory.
func usageScript(data, out, region string) string {
	r := strings.NewReplacer("{day}", usageDay, "{under}", "0.5")
	s := r.Replace(usageSQL)
	for _, e := range []string{"users", "devices", "subscriptions", "orders", "customers", "clusters", "servers"} {
		path := filepath.Join(data, "inventory", e, "region="+region, "day="+usageDay, "part-*.parquet") // every part
		s = strings.ReplaceAll(s, "'{inv:"+e+"}'", "'"+path+"', hive_partitioning = false")
	}
	for _, g := range usageGrains {
		s = strings.ReplaceAll(s, "{out:"+g+"}", filepath.Join(out, g+"-"+region+".parquet"))
	}
	return s
}

// runUsageDuckDB is the DuckDB side, one thread: the four tables of every region.
func runUsageDuckDB(data, out string) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("SET threads = 1"); err != nil {
		return err
	}
	for _, region := range usageRegions {
		if _, err := db.Exec(usageScript(data, out, region)); err != nil {
			return fmt.Errorf("region %s: %w", region, err)
		}
	}
	return nil
}

// sameUsage has DuckDB compare its tables with tally's, grain by grain and
// region by region (EXCEPT ALL both ways): "" when they agree.
func sameUsage(data, out string) (string, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var diffs []string
	for _, g := range usageGrains {
		for _, region := range usageRegions {
			tally := filepath.Join(data, "usage", g, "region="+region, "day="+usageDay, "part-*.parquet") // every part
			ours := filepath.Join(out, g+"-"+region+".parquet")
			var a, b, n int64
			q := fmt.Sprintf(`SELECT (SELECT count(*) FROM (SELECT * FROM read_parquet('%[1]s', hive_partitioning = false) EXCEPT ALL SELECT * FROM '%[2]s')),
				(SELECT count(*) FROM (SELECT * FROM '%[2]s' EXCEPT ALL SELECT * FROM read_parquet('%[1]s', hive_partitioning = false))),
				(SELECT count(*) FROM read_parquet('%[1]s', hive_partitioning = false))`, tally, ours)
			if err := db.QueryRow(q).Scan(&a, &b, &n); err != nil {
				return "", fmt.Errorf("usage/%s region %s: %w", g, region, err)
			}
			if a+b > 0 || n == 0 {
				diffs = append(diffs, fmt.Sprintf("usage/%s region=%s: %d of tally's %d rows not in DuckDB's, %d of DuckDB's not in tally's", g, region, a, n, b))
			}
		}
	}
	return strings.Join(diffs, "; "), nil
}

// benchUsage syncs the demo estate at customers into a work directory once,
// then runs tally's license-usage and the DuckDB SQL, each in its own process,
// interleaved runs times, and returns the medians' CPU seconds.
func benchUsage(tally string, customers, runs int, work string) (tallyCPU, duckCPU float64, same string, err error) {
	data := filepath.Join(work, "data")
	env := append(os.Environ(), "TALLY_STORAGE_PATH="+data, fmt.Sprintf("TALLY_SOURCE_SCALE=%d", customers))
	run := func(args ...string) (float64, error) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env, cmd.Stderr = env, os.Stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%v: %w", args, err)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), nil
	}
	fmt.Fprintf(os.Stderr, "bench duckdb: syncing %d demo customers for the license-usage comparison…\n", customers)
	if _, err := run(tally, "run", "sync-clusters", "--period", usageDay, "--log-level", "error"); err != nil {
		return 0, 0, "", err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, 0, "", err
	}
	out := filepath.Join(work, "duckdb-usage")
	var ts, ds []float64
	for r := 1; r <= max(runs, 1); r++ {
		fmt.Fprintf(os.Stderr, "bench duckdb: license-usage at %d customers, tally and DuckDB SQL, run %d of %d…\n", customers, r, runs)
		t, err := run(tally, "run", "license-usage", "--period", usageDay, "--force", "--log-level", "error")
		if err != nil {
			return 0, 0, "", err
		}
		os.RemoveAll(out)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return 0, 0, "", err
		}
		d, err := run(self, "-child", "duckdb-usage", "-dir", out, "-data", data)
		if err != nil {
			return 0, 0, "", err
		}
		ts, ds = append(ts, t), append(ds, d)
	}
	slices.Sort(ts)
	slices.Sort(ds)
	same, err = sameUsage(data, out)
	return ts[len(ts)/2], ds[len(ds)/2], same, err
}
