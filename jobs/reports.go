package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"tally/analytics"
	"tally/extsort"
	"tally/license"
	"tally/mail"
	"tally/model"
	"tally/periods"
	"tally/report"
	"tally/runner"
	"tally/storage"
	"tally/subscriptions"
)

// Linker makes the link a recipient downloads a report file from.
type Linker interface {
	Link(ctx context.Context, region, key, downloadName string) (string, error)
	// Validity says how long links work ("7 days", "as long as the files are kept").
	Validity() string
}

// Reports is a report job (reports-daily, reports-weekly, reports-monthly): for
// each subscription of its cadence and each region with rows, it writes the
// template's CSV and/or Parquet, then emails the subscribers links.
type Reports struct {
	Every          periods.Cadence
	Catalog        *subscriptions.Catalog
	Sender         mail.Sender // nil: .eml files in the control store's outbox
	From           string
	Links          Linker
	UnderThreshold float64
	Thresholds     analytics.Thresholds
	SendAttempts   int
	SendBackoff    time.Duration
	// CSVBOM starts CSV files with a UTF-8 byte-order mark (reports.csv_bom).
	CSVBOM bool
	// TmpDir holds the XLSX writer's spill files (storage.tmp_dir).
	TmpDir string
	// Recipients is "each" (one message per recipient, with its own
	// unsubscribe link) or "bcc" (one message, the recipients in Bcc).
	Recipients string
	// PublicURL is the console as recipients reach it; with UnsubscribeKey,
	// each message carries its recipient's unsubscribe link and
	// List-Unsubscribe headers ("": none).
	PublicURL      string
	UnsubscribeKey func(context.Context) ([]byte, error)
	// Only, if set, limits a run to one subscription (tally subscriptions test).
	Only string
	// SortRun is how many rows a report sorted by customer name holds in
	// memory before it spills a sorted run to a temporary file (0: 1024).
	SortRun int
	// Test marks a subscriptions test run: its own job name (test-reports-<cadence>)
	// and so its own ledger entries and lease, its files under test/, so it never
	// counts toward the scheduled period being complete.
	Test bool
}

// TestOf is the test run of one subscription (tally subscriptions test).
func (j *Reports) TestOf(subscription string) *Reports {
	t := *j
	t.Only, t.Test = subscription, true
	return &t
}

// key is where a report file goes; a test run's go under test/.
func (j *Reports) key(region string, t *report.Template, p periods.Period, file, ext string) string {
	k := report.Key(region, t, p, file, ext)
	if j.Test {
		return "test/" + k
	}
	return k
}

// ReportsJob is the report job name of a cadence.
func ReportsJob(c periods.Cadence) string { return "reports-" + string(c) }

func (j *Reports) Name() string {
	if j.Test {
		return "test-" + ReportsJob(j.Every)
	}
	return ReportsJob(j.Every)
}
func (j *Reports) Cadence() periods.Cadence { return j.Every }

// Schedule is 01:00 UTC after the period ends.
func (j *Reports) Schedule() string {
	switch j.Every {
	case periods.Weekly:
		return "0 1 * * 0"
	case periods.Monthly:
		return "0 1 1 * *"
	}
	return "0 1 * * *"
}

// Needs is the facts the templates read: a day's usage (and so its snapshot and
// calls); a week's analytics (and so its 7 days); every day of a month.
func (j *Reports) Needs(p periods.Period) []runner.Dep {
	if p.Cadence == periods.Weekly {
		return []runner.Dep{{Job: Analytics, Period: p}}
	}
	var deps []runner.Dep
	for _, d := range p.Days() {
		deps = append(deps, runner.Dep{Job: LicenseUsage, Period: d})
	}
	return deps
}

// Writes describes the report files.
func (j *Reports) Writes(p periods.Period, regions []string) []string {
	return []string{fmt.Sprintf("reports/region={%s}/<template-slug>/%s/%s/<Template Name>_<8 alnum>_%s.{csv,parquet,xlsx} for each %s subscription and region with rows",
		strings.Join(regions, ","), p.Cadence, p.ID(), p.End().Format("2006-01-02"), p.Cadence)}
}

// ReportFile is one published report file, as the run's "reports" note lists it.
type ReportFile struct {
	Region string `json:"region"`
	Name   string `json:"name"`
	Key    string `json:"key"`
	Format string `json:"format"`
	Rows   int64  `json:"rows"`
}

// SubscriptionReport is what a run produced for one subscription.
type SubscriptionReport struct {
	Template  string       `json:"template"`
	PartnerID string       `json:"partner_id"`
	Files     []ReportFile `json:"files"`
	Summary   []string     `json:"summary,omitempty"`
	Error     string       `json:"error,omitempty"`
}

// ReportsOf reads what a report run produced from its ledger entry (the
// "reports" note); ok is false for a run that is not a report run.
func ReportsOf(rec *runner.Record) (map[string]*SubscriptionReport, bool) {
	raw, ok := rec.Notes["reports"]
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, false
	}
	var reports map[string]*SubscriptionReport
	if json.Unmarshal(b, &reports) != nil {
		return nil, false
	}
	return reports, true
}

// Run writes every active subscription's reports.
func (j *Reports) Run(ctx context.Context, rc *runner.RunContext) error {
	subs, err := (&subscriptions.Store{S: rc.Stores.Control}).List(ctx)
	if err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	out := map[string]*SubscriptionReport{}
	type job struct {
		sub    *subscriptions.Subscription
		tpl    *report.Template
		sr     *SubscriptionReport
		counts map[string]int64
	}
	var todo []*job
	for _, sub := range subs {
		if sub.Cadence != j.Every || (j.Only == "" && sub.Paused) || (j.Only != "" && sub.ID != j.Only) {
			continue
		}
		tpl, err := j.Catalog.Template(sub)
		if err == nil {
			err = j.Catalog.Validate(sub)
		}
		if err != nil {
			// One broken subscription must not stop everyone else's reports.
			rc.Log.Error().Err(err).Str("subscription", sub.ID).Msg("subscription skipped")
			out[sub.ID] = &SubscriptionReport{PartnerID: sub.PartnerID, Error: err.Error()}
			continue
		}
		t := &job{sub: sub, tpl: tpl, sr: &SubscriptionReport{Template: tpl.Name, PartnerID: sub.PartnerID}, counts: map[string]int64{}}
		out[sub.ID] = t.sr
		todo = append(todo, t)
	}
	// A region at a time, every subscription in it.
	for _, region := range rc.Regions {
		var rd *regionData
		for _, t := range todo {
			if !t.sub.InRegion(region) {
				continue
			}
			if rd == nil {
				if rd, err = j.regionData(ctx, rc, region); err != nil {
					return err
				}
			}
			for part := range t.tpl.Parts {
				files, err := j.writePart(ctx, rc, rd, t.sub, t.tpl, part, t.counts)
				if err != nil {
					return fmt.Errorf("subscription %s, %s, region %s: %w", t.sub.ID, t.tpl.Name, region, err)
				}
				t.sr.Files = append(t.sr.Files, files...)
			}
		}
	}
	for _, t := range todo {
		t.sr.Summary = summary(t.sr.Files, t.counts, j.UnderThreshold)
	}
	rc.Note("reports", out)
	return nil
}

// regionData is what every template of a region needs to filter and label rows.
type regionData struct {
	region   string
	store    storage.Store
	day      periods.Period // the period's last day, whose customers label the rows
	partners map[string]string
}

// customerFacts are the columns of inventory/customers the reports use.
type customerFacts struct {
	CustomerID   string    `parquet:"customer_id"`
	CustomerName string    `parquet:"customer_name"`
	PartnerID    string    `parquet:"partner_id"`
	ExternalID   *string   `parquet:"external_id,optional"`
	CreatedAt    time.Time `parquet:"created_at,timestamp(microsecond:utc)"`
}

// regionData reads the region's partner names; its customers are read by each
// report part as its rows come (viewer).
func (j *Reports) regionData(ctx context.Context, rc *runner.RunContext, region string) (*regionData, error) {
	store, err := rc.Store(region)
	if err != nil {
		return nil, err
	}
	rd := &regionData{region: region, store: store, day: rc.Period.LastDay(), partners: map[string]string{}}
	parts, err := readAll[model.Partner](ctx, store, InventoryKey("partners", region, rd.day))
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		rd.partners[p.PartnerID] = p.PartnerName
	}
	return rd, nil
}

// viewer says whose rows go into one subscription's report, and labels them.
// It reads the region's customers (in customer_id order) as the template's
// rows ask for them, in that order too (every input is sorted by
// customer_id): it holds one customer, never the region's.
type viewer struct {
	sub   *subscriptions.Subscription
	p     periods.Period
	s     *stream[customerFacts]
	last  string
	cur   customerFacts
	found bool
}

func (rd *regionData) viewer(ctx context.Context, sub *subscriptions.Subscription, p periods.Period) (*viewer, error) {
	s, err := openStream(ctx, rd.store, InventoryKey("customers", rd.region, rd.day), func(c *customerFacts) string { return c.CustomerID })
	if err != nil {
		return nil, err
	}
	return &viewer{sub: sub, p: p, s: s}, nil
}

func (v *viewer) close() { v.s.close() }

// see is a customer's facts and whether its rows go into the report: the
// subscription's partner, a customer its role may see, and an organisation
// created at least 24 hours before the period's end. Customers are asked for
// in customer_id order (the same one again is fine).
func (v *viewer) see(id string) (customerFacts, bool, error) {
	if id != v.last || v.last == "" {
		if id < v.last {
			return customerFacts{}, false, fmt.Errorf("report rows out of customer_id order: %s after %s", id, v.last)
		}
		rows, err := v.s.rowsOf(id)
		if err != nil {
			return customerFacts{}, false, err
		}
		v.last, v.found = id, len(rows) > 0
		if v.found {
			v.cur = rows[0]
		}
	}
	c := v.cur
	if !v.found || c.PartnerID != v.sub.PartnerID || !v.sub.Sees(id) {
		return customerFacts{}, false, nil
	}
	return c, !c.CreatedAt.After(v.p.End().Add(-24 * time.Hour)), nil
}

// seeAll is see for the customers of rows read whole, in any order: the
// visible ones among ids.
func (v *viewer) seeAll(ids []string) (map[string]customerFacts, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	out := map[string]customerFacts{}
	for _, id := range slices.Compact(ids) {
		c, ok, err := v.see(id)
		if err != nil {
			return nil, err
		}
		if ok {
			out[id] = c
		}
	}
	return out, nil
}

// partWriter opens a report's files on its first row, so a region without rows
// gets no files.
type partWriter struct {
	job      *Reports
	rc       *runner.RunContext
	rd       *regionData
	sub      *subscriptions.Subscription
	tpl      *report.Template
	part     int
	csv, pq  *runner.OutputWriter
	xlsx     *runner.OutputWriter
	w        *report.Writer
	name     string
	baseCols []report.Column
}

func (pw *partWriter) write(ctx context.Context, row []report.Value) error {
	row, ok := pw.tpl.Project(pw.part, pw.baseCols, row)
	if !ok {
		return nil
	}
	if pw.w == nil {
		p := pw.rc.Period
		pw.name = report.FileName(pw.tpl, pw.part, pw.sub.ID, p)
		var err error
		if pw.sub.Wants("csv") {
			if pw.csv, err = pw.rc.Open(ctx, pw.rd.region, pw.job.key(pw.rd.region, pw.tpl, p, pw.name, "csv")); err != nil {
				return err
			}
		}
		if pw.sub.Wants("parquet") {
			if pw.pq, err = pw.rc.Open(ctx, pw.rd.region, pw.job.key(pw.rd.region, pw.tpl, p, pw.name, "parquet")); err != nil {
				pw.abort(err)
				return err
			}
		}
		if pw.sub.Wants("xlsx") {
			if pw.xlsx, err = pw.rc.Open(ctx, pw.rd.region, pw.job.key(pw.rd.region, pw.tpl, p, pw.name, "xlsx")); err != nil {
				pw.abort(err)
				return err
			}
		}
		sheet := pw.tpl.Name
		if suffix := pw.tpl.Parts[pw.part].Suffix; suffix != "" {
			sheet = strings.TrimPrefix(suffix, " - ")
		}
		if pw.w, err = report.New(pw.tpl.Parts[pw.part].Columns, report.Outputs{CSV: orNil(pw.csv), Parquet: orNil(pw.pq), XLSX: orNil(pw.xlsx),
			CSVBOM: pw.job.CSVBOM, Sheet: sheet, TmpDir: pw.job.TmpDir}); err != nil {
			pw.abort(err)
			return err
		}
	}
	return pw.w.Write(row)
}

// orNil keeps a nil *OutputWriter a nil io.Writer.
func orNil(w *runner.OutputWriter) interface{ Write([]byte) (int, error) } {
	if w == nil {
		return nil
	}
	return w
}

func (pw *partWriter) abort(err error) {
	pw.w.Abort()
	for _, out := range []*runner.OutputWriter{pw.csv, pw.pq, pw.xlsx} {
		if out != nil {
			out.Abort(err)
		}
	}
}

// finish runs the CSV/Parquet check and publishes both, or neither.
func (pw *partWriter) finish() ([]ReportFile, error) {
	if pw.w == nil {
		return nil, nil
	}
	if err := pw.w.Close(); err != nil {
		pw.abort(err)
		return nil, err
	}
	var files []ReportFile
	p := pw.rc.Period
	for _, f := range []struct {
		out *runner.OutputWriter
		ext string
	}{{pw.csv, "csv"}, {pw.pq, "parquet"}, {pw.xlsx, "xlsx"}} {
		if f.out == nil {
			continue
		}
		if err := f.out.Commit(pw.w.Rows()); err != nil {
			pw.abort(err)
			return nil, err
		}
		files = append(files, ReportFile{Region: pw.rd.region, Name: pw.name + "." + f.ext, Key: pw.job.key(pw.rd.region, pw.tpl, p, pw.name, f.ext), Format: f.ext, Rows: pw.w.Rows()})
	}
	return files, nil
}

func (j *Reports) writePart(ctx context.Context, rc *runner.RunContext, rd *regionData, sub *subscriptions.Subscription, tpl *report.Template, part int, counts map[string]int64) ([]ReportFile, error) {
	base := tpl.Base()
	pw := &partWriter{job: j, rc: rc, rd: rd, sub: sub, tpl: tpl, part: part, baseCols: base.Parts[part].Columns}
	emit := func(row []report.Value) error { return pw.write(ctx, row) }
	v, err := rd.viewer(ctx, sub, rc.Period)
	if err != nil {
		return nil, err
	}
	defer v.close()
	switch base.Parts[part].Table {
	case "flex":
		err = j.flexRows(ctx, rc.Period, rd, v, emit, counts)
	case "clusters":
		err = clusterRows(ctx, rc.Period, rd, v, emit)
	case "calling":
		err = j.callingRows(ctx, rc.Period, rd, v, emit)
	case "devices":
		err = deviceRows(ctx, rc.Period, rd, v, emit)
	case "numbers":
		err = numberRows(ctx, rc.Period, rd, v, emit)
	default:
		err = subscriptionTableRows(ctx, rc.Period, rd, v, base.Parts[part].Table, emit)
	}
	if err != nil {
		pw.abort(err)
		return nil, err
	}
	return pw.finish()
}

var licenseNames = map[string]string{model.KnowledgeWorker: "Knowledge Worker", model.CommonArea: "Common Area", model.TelePresence: "TelePresence"}
var complianceNames = map[string]string{"over": "Over", "under": "Under", "ok": "OK"}

// flexRows: subscription × license type. Over several days consumed is the peak
// and entitled the last day's. The days' files (each in customer_id order) are
// merged a customer at a time, and the rows go out by customer name through a
// sorter that spills to disk: memory holds a customer and a bounded run.
func (j *Reports) flexRows(ctx context.Context, p periods.Period, rd *regionData, v *viewer, emit func([]report.Value) error, counts map[string]int64) error {
	days, err := openDays(ctx, rd, p, func(d periods.Period) string { return UsageKey("subscription", rd.region, d) },
		func(u *model.SubscriptionUsage) string { return u.CustomerID })
	defer closeAll(days)
	if err != nil {
		return err
	}
	type row struct {
		Customer string
		U        model.SubscriptionUsage
	}
	sorted := extsort.New(j.sortRun(), func(x, y *row) int {
		return cmp.Or(cmp.Compare(x.Customer, y.Customer), cmp.Compare(x.U.CustomerID, y.U.CustomerID),
			cmp.Compare(x.U.SubscriptionID+x.U.SubscriberID, y.U.SubscriptionID+y.U.SubscriberID),
			cmp.Compare(slices.Index(model.LicenseTypes, x.U.LicenseType), slices.Index(model.LicenseTypes, y.U.LicenseType)))
	})
	defer sorted.Close()
	var peak []model.SubscriptionUsage // the customer's, a row per subscription × license type
	for id, ok := nextCustomer(days); ok; id, ok = nextCustomer(days) {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, see, err := v.see(id)
		if err != nil {
			return err
		}
		peak = peak[:0]
		for _, d := range days {
			rows, err := d.rowsOf(id)
			if err != nil {
				return err
			}
			for _, u := range rows {
				if !see {
					break
				}
				i := slices.IndexFunc(peak, func(x model.SubscriptionUsage) bool {
					return x.SubscriptionID == u.SubscriptionID && x.SubscriberID == u.SubscriberID && x.LicenseType == u.LicenseType
				})
				if i < 0 {
					peak = append(peak, u)
					continue
				}
				peak[i].Consumed = max(peak[i].Consumed, u.Consumed)
				peak[i].Entitled = u.Entitled // the latest day's
			}
		}
		for _, u := range peak {
			if err := sorted.Add(row{c.CustomerName, u}); err != nil {
				return err
			}
		}
	}
	return sorted.Each(func(r *row) error {
		state := license.Compliance(r.U.Entitled, r.U.Consumed, j.UnderThreshold)
		counts[state]++
		return emit([]report.Value{report.S(rd.partners[v.sub.PartnerID]), report.S(r.Customer), report.S(r.U.SubscriptionID),
			report.S(r.U.SubscriberID), report.S(licenseNames[r.U.LicenseType]), report.I(r.U.Entitled), report.I(r.U.Consumed),
			report.S(complianceNames[state])})
	})
}

// sortRun is how many report rows a sorter holds before it spills a run (a
// few MiB; at 32K the held run alone grew a 100K-customer run by 10 MiB).
func (j *Reports) sortRun() int { return cmp.Or(j.SortRun, 1024) }

// openDays opens a table of each day of p, each in customer_id order.
func openDays[T any](ctx context.Context, rd *regionData, p periods.Period, key func(periods.Period) string, of func(*T) string) ([]*stream[T], error) {
	var days []*stream[T]
	for _, d := range p.Days() {
		st, err := openStream(ctx, rd.store, key(d), of)
		if err != nil {
			return days, err
		}
		days = append(days, st)
	}
	return days, nil
}

func closeAll[T any](ss []*stream[T]) {
	for _, s := range ss {
		s.close()
	}
}

// nextCustomer is the smallest customer at the head of any of ss.
func nextCustomer[T any](ss []*stream[T]) (string, bool) {
	best, found := "", false
	for _, s := range ss {
		if k, ok := s.peek(); ok && (!found || k < best) {
			best, found = k, true
		}
	}
	return best, found
}

// clusterRows: the Dedicated Instance view, peak daily usage per cluster. The
// days' files are merged a customer at a time; the visible clusters are held.
func clusterRows(ctx context.Context, p periods.Period, rd *regionData, v *viewer, emit func([]report.Value) error) error {
	days, err := openDays(ctx, rd, p, func(d periods.Period) string { return UsageKey("cluster", rd.region, d) },
		func(u *model.ClusterUsage) string { return u.CustomerID })
	defer closeAll(days)
	if err != nil {
		return err
	}
	peak := map[string]*model.ClusterUsage{}
	for id, ok := nextCustomer(days); ok; id, ok = nextCustomer(days) {
		_, see, err := v.see(id)
		if err != nil {
			return err
		}
		for _, d := range days {
			rows, err := d.rowsOf(id)
			if err != nil {
				return err
			}
			for _, r := range rows {
				if !see {
					break
				}
				cur, ok := peak[r.ClusterID]
				if !ok {
					r := r
					peak[r.ClusterID] = &r
					continue
				}
				cur.KnowledgeWorker, cur.CommonArea, cur.TelePresence = max(cur.KnowledgeWorker, r.KnowledgeWorker), max(cur.CommonArea, r.CommonArea), max(cur.TelePresence, r.TelePresence)
				cur.FQDN, cur.Publisher = r.FQDN, r.Publisher
			}
		}
	}
	ids := make([]string, 0, len(peak))
	for id := range peak {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool {
		return peak[ids[a]].FQDN+"\x00"+ids[a] < peak[ids[b]].FQDN+"\x00"+ids[b]
	})
	for _, id := range ids {
		c := peak[id]
		if err := emit([]report.Value{report.S(rd.region), report.S(c.FQDN), report.S(c.Publisher), report.I(c.KnowledgeWorker),
			report.I(c.CommonArea), report.I(c.TelePresence)}); err != nil {
			return err
		}
	}
	return nil
}

// pct is a ratio as a percentage with one decimal.
func pct(r *float64) report.Value {
	if r == nil {
		return report.Null()
	}
	return report.P(math.Round(*r*1000) / 10)
}

// trend is a trend of ratios as percentages with one decimal (nil: a week
// not published).
func trend(t []*float64) report.Value {
	out := make([]*float64, len(t))
	for i, v := range t {
		if v != nil {
			p := math.Round(*v*1000) / 10
			out[i] = &p
		}
	}
	return report.PL(out)
}

// subscriptionTableRows: one of the §7 tables of the week, for Customer Subscriptions.
func subscriptionTableRows(ctx context.Context, p periods.Period, rd *regionData, v *viewer, table string, emit func([]report.Value) error) error {
	key := AnalyticsKey(table, rd.region, p)
	switch table {
	case "recently_added":
		rows, err := visibleRows(ctx, rd, v, key, func(r *model.RecentlyAdded) string { return r.CustomerID })
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := emit([]report.Value{report.S(r.CustomerName), report.S(r.SubscriptionID), report.I(r.DaysSinceAdded), report.I(r.TotalLicenses),
				report.I(r.Used), report.I(r.Assigned), report.I(r.Available), report.OptI(r.WeeklyAssignmentChange), report.OptI(r.WeeklyUsageChange)}); err != nil {
				return err
			}
		}
	case "expiring", "renewing":
		rows, err := visibleRows(ctx, rd, v, key, func(r *model.Expiring) string { return r.CustomerID })
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := emit([]report.Value{report.S(r.CustomerName), report.S(r.SubscriptionID), report.I(r.DaysTo), report.I(r.TotalLicenses),
				report.I(r.Used), report.I(r.Assigned), report.I(r.Available), trend(r.Usage3Months)}); err != nil {
				return err
			}
		}
	case "low_assignment":
		rows, err := visibleRows(ctx, rd, v, key, func(r *model.LowAssignment) string { return r.CustomerID })
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := emit([]report.Value{report.S(r.CustomerName), report.S(r.SubscriptionID), report.I(r.MonthsSinceAdded), report.I(r.Assigned),
				pct(r.AssignedPct), report.I(r.TotalLicenses), report.I(r.Used), report.I(r.Available), report.OptI(r.WeeklyAssignmentChange)}); err != nil {
				return err
			}
		}
	case "overage":
		rows, err := visibleRows(ctx, rd, v, key, func(r *model.Overage) string { return r.CustomerID })
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := emit([]report.Value{report.S(r.CustomerName), report.S(r.SubscriptionID), report.I(r.MonthsRemaining), report.B(r.AutoRenew),
				report.I(r.TotalLicenses), report.I(r.Assigned), pct(r.AssignedPct), report.I(r.Used), pct(r.UsedPct), report.I(r.Overage)}); err != nil {
				return err
			}
		}
	default:
		return runner.Permanent(fmt.Errorf("no report rows for table %q", table))
	}
	return nil
}

// visibleRows reads a table whole (in any order) and keeps the rows of the
// customers the report sees, in the table's order.
func visibleRows[T any](ctx context.Context, rd *regionData, v *viewer, key string, of func(*T) string) ([]T, error) {
	rows, err := readAll[T](ctx, rd.store, key)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(rows))
	for i := range rows {
		ids[i] = of(&rows[i])
	}
	seen, err := v.seeAll(ids)
	if err != nil {
		return nil, err
	}
	out := rows[:0]
	for i := range rows {
		if _, ok := seen[ids[i]]; ok {
			out = append(out, rows[i])
		}
	}
	return out, nil
}

// callingRows: customer × location, from the period's call legs.
func (j *Reports) callingRows(ctx context.Context, p periods.Period, rd *regionData, v *viewer, emit func([]report.Value) error) error {
	// Location names from the numbers table (in customer_id order, like the
	// calls): three columns, read a customer at a time.
	type location struct {
		CustomerID   string `parquet:"customer_id"`
		LocationID   string `parquet:"location_id"`
		LocationName string `parquet:"location_name"`
	}
	numbers, err := openStream(ctx, rd.store, InventoryKey("numbers", rd.region, p.LastDay()), func(n *location) string { return n.CustomerID })
	if err != nil {
		return err
	}
	defer numbers.close()
	days, err := openDays(ctx, rd, p, func(d periods.Period) string { return CallsKey(rd.region, d) }, func(l *analytics.Leg) string { return l.CustomerID })
	defer closeAll(days)
	if err != nil {
		return err
	}
	type acc struct {
		location                                       string
		calls, legs, poor, seconds, videoSeconds       int64
		audio, video, desk, room, other, hunt, aa      int64
		queue, timedOut, overflowed, forwarded, abandn int64
		call                                           string
		callMax                                        int64
		callVideo, callPoor                            bool
	}
	flush := func(a *acc) {
		if a.call == "" {
			return
		}
		a.calls++
		a.seconds += a.callMax
		if a.callVideo {
			a.videoSeconds += a.callMax
		}
		if a.callPoor {
			a.poor++
		}
	}
	// A customer × location row, sorted by customer name, customer and location.
	type row struct {
		Customer, CustomerID, LocationName, LocationID string
		Counts                                         [17]int64
	}
	sorted := extsort.New(j.sortRun(), func(x, y *row) int {
		return cmp.Or(cmp.Compare(x.Customer, y.Customer), cmp.Compare(x.CustomerID, y.CustomerID),
			cmp.Compare(x.LocationName+x.LocationID, y.LocationName+y.LocationID))
	})
	defer sorted.Close()
	accs := map[string]*acc{} // the customer's, by location
	for id, ok := nextCustomer(days); ok; id, ok = nextCustomer(days) {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, see, err := v.see(id)
		if err != nil {
			return err
		}
		clear(accs)
		for _, d := range days {
			err := d.each(id, func(leg *analytics.Leg) {
				if !see {
					return
				}
				a := accs[leg.LocationID]
				if a == nil {
					a = &acc{location: leg.LocationID}
					accs[leg.LocationID] = a
				}
				if leg.CallID != a.call {
					flush(a)
					a.call, a.callMax, a.callVideo, a.callPoor = leg.CallID, 0, false, false
					switch model.Deref(leg.RoutedVia) {
					case "hunt-group":
						a.hunt++
					case "auto-attendant":
						a.aa++
					}
					if leg.QueueOutcome != nil {
						a.queue++
						switch *leg.QueueOutcome {
						case "timed-out":
							a.timedOut++
						case "overflowed":
							a.overflowed++
						case "forwarded":
							a.forwarded++
						case "abandoned":
							a.abandn++
						}
					}
				}
				a.legs++
				a.callMax = max(a.callMax, leg.DurationSeconds)
				a.callVideo = a.callVideo || leg.IsVideo
				a.callPoor = a.callPoor || j.Thresholds.Poor(leg)
				if leg.IsVideo {
					a.video++
				} else {
					a.audio++
				}
				switch leg.DeviceType {
				case model.DeskPhone:
					a.desk++
				case model.Room, model.TelePresenceType:
					a.room++
				default:
					a.other++
				}
			})
			if err != nil {
				return err
			}
		}
		if len(accs) == 0 {
			continue
		}
		locs, err := numbers.rowsOf(id)
		if err != nil {
			return err
		}
		names := map[string]string{}
		for _, l := range locs {
			names[l.LocationID] = l.LocationName
		}
		for _, a := range accs {
			flush(a)
			if err := sorted.Add(row{c.CustomerName, id, names[a.location], a.location, [17]int64{a.calls, a.legs, a.poor, a.seconds / 60, a.videoSeconds / 60,
				a.audio, a.video, a.desk, a.room, a.other, a.hunt, a.aa, a.queue, a.timedOut, a.overflowed, a.forwarded, a.abandn}}); err != nil {
				return err
			}
		}
	}
	return sorted.Each(func(r *row) error {
		loc := r.LocationName
		if loc == "" {
			loc = r.LocationID
		}
		out := []report.Value{report.S(r.Customer), report.S(r.CustomerID), report.S(loc)}
		for _, v := range r.Counts {
			out = append(out, report.I(v))
		}
		return emit(out)
	})
}

// userEmail is the columns of inventory/users the Devices report needs: a
// narrow read decodes only these.
type userEmail struct {
	UserID     string `parquet:"user_id"`
	CustomerID string `parquet:"customer_id"`
	Email      string `parquet:"email"`
}

// deviceRows: the snapshot of the period's last day, streamed. Devices and
// users are both in customer_id order (sync writes a region's customers in
// order), so they are merge-joined a customer at a time: memory holds one
// customer's users, not the region's.
func deviceRows(ctx context.Context, p periods.Period, rd *regionData, v *viewer, emit func([]report.Value) error) error {
	r, err := openInput[model.Device](ctx, rd.store, InventoryKey("devices", rd.region, p.LastDay()))
	if err != nil {
		return err
	}
	defer r.Close()
	users, err := openStream(ctx, rd.store, InventoryKey("users", rd.region, p.LastDay()), func(u *userEmail) string { return u.CustomerID })
	if err != nil {
		return err
	}
	defer users.close()
	emails, current := map[string]string{}, ""
	for {
		d, ok := r.Next()
		if !ok {
			return r.Err()
		}
		c, ok, err := v.see(d.CustomerID)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if d.CustomerID != current {
			us, err := users.rowsOf(d.CustomerID)
			if err != nil {
				return err
			}
			clear(emails)
			for _, u := range us {
				emails[u.UserID] = u.Email
			}
			current = d.CustomerID
		}
		userID := report.Null()
		if d.UserID != nil {
			userID = report.S(emails[*d.UserID])
		}
		if err := emit([]report.Value{report.OptS(c.ExternalID), report.S(c.CustomerName), report.S(c.CustomerID), report.S(d.LocationID),
			report.S(d.LocationName), report.S(d.Product), report.S(d.MAC), report.S(d.Firmware), report.OptS(d.PhoneNumber),
			report.OptS(d.Extension), userID, report.OptS(d.UserID)}); err != nil {
			return err
		}
	}
}

// numberRows: the snapshot of the period's last day, streamed.
func numberRows(ctx context.Context, p periods.Period, rd *regionData, v *viewer, emit func([]report.Value) error) error {
	r, err := openInput[model.Number](ctx, rd.store, InventoryKey("numbers", rd.region, p.LastDay()))
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		n, ok := r.Next()
		if !ok {
			return r.Err()
		}
		c, ok, err := v.see(n.CustomerID)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := emit([]report.Value{report.OptS(c.ExternalID), report.S(c.CustomerName), report.S(c.CustomerID), report.S(n.LocationID),
			report.S(n.LocationName), report.S(n.Country), report.S(n.Number), report.OptS(n.Extension), report.S(n.PSTNConnection),
			report.B(n.IsActive), report.S(n.UserType), report.S(n.NumberType), report.OptS(n.UserID), report.OptS(n.UserUUID)}); err != nil {
			return err
		}
	}
}

// RowsByRegion sums each region's report rows, counting a report written as both
// CSV and Parquet once.
func RowsByRegion(files []ReportFile) (map[string]int64, []string) {
	rows, regions, seen := map[string]int64{}, []string{}, map[string]bool{}
	for _, f := range files {
		if _, ok := rows[f.Region]; !ok {
			regions = append(regions, f.Region)
			rows[f.Region] = 0
		}
		if k := f.Region + "/" + strings.TrimSuffix(f.Name, "."+f.Format); !seen[k] {
			seen[k] = true
			rows[f.Region] += f.Rows
		}
	}
	return rows, regions
}

// summary is the short summary of an email: rows, regions, compliance reds.
func summary(files []ReportFile, compliance map[string]int64, under float64) []string {
	rows, regions := RowsByRegion(files)
	if len(regions) == 0 {
		return nil
	}
	var total int64
	for _, n := range rows {
		total += n
	}
	out := []string{fmt.Sprintf("%d rows in %d region(s): %s", total, len(regions), strings.Join(regions, ", "))}
	if compliance["over"]+compliance["under"] > 0 {
		out = append(out, fmt.Sprintf("Compliance reds: %d over their entitlement, %d under %.0f%% of it", compliance["over"], compliance["under"], under*100))
	}
	return out
}
