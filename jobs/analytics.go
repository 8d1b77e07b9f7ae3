package jobs

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"

	"tally/analytics"
	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/storage"
)

// Analytics is the analytics job name.
const Analytics = "analytics"

// AnalyticsTables are the analytics/ tables (a public contract).
var AnalyticsTables = []string{"customer_status", "subscription_status", "kpis", "recently_added", "expiring", "renewing",
	"low_assignment", "overage", "calling_users", "calling_usage", "call_quality", "call_queues"}

// Trend lengths: 8 weeks, and "the last 3 months" as 13 weekly values.
const (
	trendWeeks = 8
	usageWeeks = 13
)

// AnalyticsKey is where an analytics table of a region and week lives.
func AnalyticsKey(table, region string, week periods.Period) string {
	return fmt.Sprintf("analytics/%s/region=%s/week=%s/part-0.parquet", table, region, week.ID())
}

// WeeklyAnalytics is the analytics job: the Sunday 00:00 UTC refresh of the week
// that just ended, from the snapshot and usage of its Saturday.
type WeeklyAnalytics struct {
	Ledger     *runner.Ledger
	Thresholds analytics.Thresholds
	// LowBelow: a low-assignment customer is also below this ratio (default 0.5).
	LowBelow float64
}

func (a *WeeklyAnalytics) Name() string             { return Analytics }
func (a *WeeklyAnalytics) Cadence() periods.Cadence { return periods.Weekly }
func (a *WeeklyAnalytics) Schedule() string         { return "0 0 * * 0" }

// Needs is license-usage for the 7 days and the snapshot of the Saturday before
// (for weekly change). Earlier weeks' analytics (trends) are read, never run.
func (a *WeeklyAnalytics) Needs(p periods.Period) []runner.Dep {
	var deps []runner.Dep
	for _, d := range p.Days() {
		deps = append(deps, runner.Dep{Job: LicenseUsage, Period: d})
	}
	return append(deps, runner.Dep{Job: SyncClusters, Period: periods.Day(p.Start).Prev()})
}

// Writes lists the analytics tables.
func (a *WeeklyAnalytics) Writes(p periods.Period, regions []string) []string {
	var out []string
	for _, r := range regions {
		for _, t := range AnalyticsTables {
			out = append(out, AnalyticsKey(t, r, p))
		}
	}
	return out
}

// ReadsEarlierPeriods: a week's trends read the weeks before it.
func (a *WeeklyAnalytics) ReadsEarlierPeriods() bool { return true }

// history is what earlier weeks published, for trends.
type history struct {
	weeks     []periods.Period // W-12 … W-1, oldest first
	published map[string]bool  // week id → analytics complete
}

func (a *WeeklyAnalytics) history(ctx context.Context, rc *runner.RunContext, w periods.Period) (*history, []string, error) {
	h := &history{published: map[string]bool{}}
	var missing []string
	p := w
	for i := 0; i < usageWeeks-1; i++ {
		p = p.Prev()
		h.weeks = append([]periods.Period{p}, h.weeks...)
	}
	for _, p := range h.weeks {
		rec, done, err := a.Ledger.Complete(ctx, Analytics, p.ID())
		if err != nil {
			return nil, nil, err
		}
		h.published[p.ID()] = done
		if done {
			rc.ReadEarlier(rec) // its tables feed this week's trends: published again, this week is stale
		} else {
			missing = append(missing, p.ID())
		}
	}
	return h, missing, nil
}

// Run computes every region from that region's files only.
func (a *WeeklyAnalytics) Run(ctx context.Context, rc *runner.RunContext) error {
	h, missing, err := a.history(ctx, rc, rc.Period)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		rc.Log.Warn().Strs("weeks", missing).Msg("earlier weeks' analytics are missing: their trend values are null (tally backfill analytics fills them)")
	}
	rc.Note("missing_trend_weeks", nonNil(missing))
	var kpis []map[string]any
	for _, region := range rc.Regions {
		store, err := rc.Store(region)
		if err != nil {
			return err
		}
		rows, err := a.region(ctx, rc, store, region, h)
		if err != nil {
			return fmt.Errorf("region %s: %w", region, err)
		}
		for _, k := range rows {
			kpis = append(kpis, map[string]any{"region": region, "partner_id": k.PartnerID, "total_customers": k.TotalCustomers,
				"approaching_expiration": k.ApproachingExpiration, "approaching_renewal": k.ApproachingRenewal,
				"low_assignment": k.LowAssignment, "over_license_limit": k.OverLicenseLimit, "calling_users": k.CallingUsers})
		}
	}
	rc.Note("kpis", kpis)
	return nil
}

// weekTables are one region's analytics tables, each written as its rows are
// made (kpis, one row per partner, when the region is done).
type weekTables struct {
	customerStatus *table[model.CustomerStatus]
	subStatus      *table[model.SubscriptionStatus]
	kpis           *table[model.KPIs]
	recentlyAdded  *table[model.RecentlyAdded]
	expiring       *table[model.Expiring]
	renewing       *table[model.Expiring]
	low            *table[model.LowAssignment]
	overage        *table[model.Overage]
	callingUsers   *table[model.CallingUser]
	callingUsage   *table[model.CallingUsage]
	callQuality    *table[model.CallQuality]
	callQueues     *table[model.CallQueues]
}

func (t *weekTables) all() []committer {
	return []committer{t.customerStatus, t.subStatus, t.kpis, t.recentlyAdded, t.expiring, t.renewing, t.low, t.overage,
		t.callingUsers, t.callingUsage, t.callQuality, t.callQueues}
}

func openWeekTables(ctx context.Context, rc *runner.RunContext, region string) (t *weekTables, err error) {
	t = &weekTables{}
	defer func() {
		if err != nil {
			abortAll(t.all(), err)
		}
	}()
	key := func(table string) string { return AnalyticsKey(table, region, rc.Period) }
	if t.customerStatus, err = openTable[model.CustomerStatus](ctx, rc, region, key("customer_status")); err != nil {
		return
	}
	if t.subStatus, err = openTable[model.SubscriptionStatus](ctx, rc, region, key("subscription_status")); err != nil {
		return
	}
	if t.kpis, err = openTable[model.KPIs](ctx, rc, region, key("kpis")); err != nil {
		return
	}
	if t.recentlyAdded, err = openTable[model.RecentlyAdded](ctx, rc, region, key("recently_added")); err != nil {
		return
	}
	if t.expiring, err = openTable[model.Expiring](ctx, rc, region, key("expiring")); err != nil {
		return
	}
	if t.renewing, err = openTable[model.Expiring](ctx, rc, region, key("renewing")); err != nil {
		return
	}
	if t.low, err = openTable[model.LowAssignment](ctx, rc, region, key("low_assignment")); err != nil {
		return
	}
	if t.overage, err = openTable[model.Overage](ctx, rc, region, key("overage")); err != nil {
		return
	}
	if t.callingUsers, err = openTable[model.CallingUser](ctx, rc, region, key("calling_users")); err != nil {
		return
	}
	if t.callingUsage, err = openTable[model.CallingUsage](ctx, rc, region, key("calling_usage")); err != nil {
		return
	}
	if t.callQuality, err = openTable[model.CallQuality](ctx, rc, region, key("call_quality")); err != nil {
		return
	}
	t.callQueues, err = openTable[model.CallQueues](ctx, rc, region, key("call_queues"))
	return
}

// weekInputs are one region's inputs of the week, each sorted by customer_id,
// so they are merged a customer at a time and no table is held whole.
type weekInputs struct {
	customers      *stream[model.Customer]
	subs, prevSubs *stream[model.Subscription] // the Saturday's, and the Saturday before's
	usage          *stream[model.SubscriptionUsage]
	calls          []*stream[analytics.Leg] // the week's 7 days
}

func (in *weekInputs) close() {
	in.customers.close()
	in.subs.close()
	in.prevSubs.close()
	in.usage.close()
	for _, d := range in.calls {
		d.close()
	}
}

// openWeekInputs opens the Saturday's customers and subscriptions, and with
// all, the rest (pass 1 needs only those two).
func openWeekInputs(ctx context.Context, store storage.Store, region string, w periods.Period, all bool) (in *weekInputs, err error) {
	in = &weekInputs{}
	defer func() {
		if err != nil {
			in.close()
		}
	}()
	sat, prevSat := w.LastDay(), periods.Day(w.Start).Prev()
	byCustomer := func(s *model.Subscription) string { return s.CustomerID }
	if in.customers, err = openStream(ctx, store, InventoryKey("customers", region, sat), func(c *model.Customer) string { return c.CustomerID }); err != nil {
		return
	}
	if in.subs, err = openStream(ctx, store, InventoryKey("subscriptions", region, sat), byCustomer); err != nil || !all {
		return
	}
	if in.prevSubs, err = openStream(ctx, store, InventoryKey("subscriptions", region, prevSat), byCustomer); err != nil {
		return
	}
	if in.usage, err = openStream(ctx, store, UsageKey("subscription", region, sat), func(u *model.SubscriptionUsage) string { return u.CustomerID }); err != nil {
		return
	}
	for _, day := range w.Days() {
		d, err := openStream(ctx, store, CallsKey(region, day), func(l *analytics.Leg) string { return l.CustomerID })
		if err != nil {
			return in, err
		}
		in.calls = append(in.calls, d)
	}
	return
}

// customerWeek is one counted customer at the week's end.
type customerWeek struct {
	c                     *model.Customer
	subs, prevSubs        []model.Subscription
	usage, subUsage       []model.SubscriptionUsage
	total, assigned, used int64 // summed over active subscriptions
	ratio                 float64
	overage               []int64 // per subscription (by index in subs)
	overCustomer          bool
	calling               bool
	activeSubs            []*model.Subscription
	hasLicenses           bool
}

// next reads the next counted customer's rows (nil when the customers are
// done); the rows are valid until the next call.
func (in *weekInputs) next(week analytics.Week, cw *customerWeek) (*customerWeek, error) {
	for {
		cs, ok := in.customers.peek()
		if !ok {
			return nil, nil // a read error surfaced in the take before, or at open
		}
		custs, err := in.customers.take(cs)
		if err != nil {
			return nil, err
		}
		c := &custs[0]
		*cw = customerWeek{c: c, calling: analytics.HasCalling(c.Products), activeSubs: cw.activeSubs[:0], overage: cw.overage[:0], subUsage: cw.subUsage[:0]}
		if cw.subs, err = in.subs.rowsOf(c.CustomerID); err != nil {
			return nil, err
		}
		if !analytics.Counted(c.Products) {
			continue // Messaging-only customers are left out
		}
		for i := range cw.subs {
			if s := &cw.subs[i]; week.Active(s) {
				cw.activeSubs = append(cw.activeSubs, s)
				cw.total += s.LicensesTotal
				cw.assigned += s.LicensesAssigned
				cw.used += s.LicensesUsed7d
			}
		}
		cw.hasLicenses = cw.total > 0
		if cw.hasLicenses {
			cw.ratio = float64(cw.assigned) / float64(cw.total)
		}
		if in.usage == nil {
			return cw, nil // pass 1
		}
		if cw.prevSubs, err = in.prevSubs.rowsOf(c.CustomerID); err != nil {
			return nil, err
		}
		if cw.usage, err = in.usage.rowsOf(c.CustomerID); err != nil {
			return nil, err
		}
		for i := range cw.subs {
			mine := cw.subUsage[:0]
			for _, u := range cw.usage {
				if u.SubscriberID == cw.subs[i].SubscriberID {
					mine = append(mine, u)
				}
			}
			cw.subUsage = mine
			o := analytics.Overage(mine)
			cw.overage = append(cw.overage, o)
			cw.overCustomer = cw.overCustomer || o > 0
		}
		return cw, nil
	}
}

// partnerWeek is what a partner's KPIs add up while its customers go by.
type partnerWeek struct {
	k                                   model.KPIs
	cutoff                              float64 // the low-assignment quartile
	exp, ren, low                       struct{ customers, total, assigned, used int64 }
	lowUnassigned, overCustomers, overL int64
}

// cutoffs is pass 1: each partner's low-assignment cutoff, the bottom quartile
// of the ratios of its counted customers with licenses (only the ratios are held).
func (a *WeeklyAnalytics) cutoffs(ctx context.Context, store storage.Store, region string, w periods.Period, week analytics.Week) (map[string]float64, error) {
	in, err := openWeekInputs(ctx, store, region, w, false)
	if err != nil {
		return nil, err
	}
	defer in.close()
	ratios := map[string][]float64{}
	var cw customerWeek
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := in.next(week, &cw)
		if err != nil || c == nil {
			out := map[string]float64{}
			for pid, r := range ratios {
				out[pid] = analytics.LowAssignmentCutoff(r)
			}
			return out, err
		}
		if _, ok := ratios[c.c.PartnerID]; !ok {
			ratios[c.c.PartnerID] = nil // a partner without a customer with licenses still has a cutoff
		}
		if c.hasLicenses {
			ratios[c.c.PartnerID] = append(ratios[c.c.PartnerID], c.ratio)
		}
	}
}

// region computes a region's tables in two passes over its inputs: the
// partners' low-assignment cutoffs, then every counted customer in id order,
// each table's rows written as they are made.
func (a *WeeklyAnalytics) region(ctx context.Context, rc *runner.RunContext, store storage.Store, region string, h *history) ([]model.KPIs, error) {
	w := rc.Period
	week := analytics.Week{End: model.DateOf(w.End())}
	cutoffs, err := a.cutoffs(ctx, store, region, w, week)
	if err != nil {
		return nil, err
	}
	hist, err := a.readHistory(ctx, store, region, h)
	if err != nil {
		return nil, err
	}
	defer hist.close()
	in, err := openWeekInputs(ctx, store, region, w, true)
	if err != nil {
		return nil, err
	}
	defer in.close()
	t, err := openWeekTables(ctx, rc, region)
	if err != nil {
		return nil, err
	}
	partners := map[string]*partnerWeek{}
	wc := &weekCalls{th: a.Thresholds}
	var cw customerWeek
	err = func() error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			c, err := in.next(week, &cw)
			if err != nil || c == nil {
				return err
			}
			if err := hist.customer(c.c.CustomerID); err != nil {
				return err
			}
			pw := partners[c.c.PartnerID]
			if pw == nil {
				pw = &partnerWeek{k: model.KPIs{PartnerID: c.c.PartnerID}, cutoff: cutoffs[c.c.PartnerID]}
				partners[c.c.PartnerID] = pw
			}
			if err := a.customer(c, pw, week, w, t, hist); err != nil {
				return err
			}
			if c.calling {
				users, err := wc.customer(in, c, t, hist)
				if err != nil {
					return err
				}
				pw.k.CallingUsers += users
			}
		}
	}()
	if err != nil {
		abortAll(t.all(), err)
		return nil, err
	}
	ids := make([]string, 0, len(partners))
	for id := range partners {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	kpis := make([]model.KPIs, 0, len(ids))
	for _, id := range ids {
		kpis = append(kpis, partners[id].kpis(hist))
	}
	if err := t.kpis.add(kpis...); err != nil {
		abortAll(t.all(), err)
		return nil, err
	}
	return kpis, commitAll(t.all())
}

// kpis is the partner's row of analytics/kpis.
func (pw *partnerWeek) kpis(hist *weekHistory) model.KPIs {
	k, exp, ren, low := pw.k, pw.exp, pw.ren, pw.low
	k.ApproachingExpiration, k.ApproachingRenewal = exp.customers, ren.customers
	k.ExpiringCustomers, k.ExpiringAssignmentPct, k.ExpiringUsagePct = exp.customers, analytics.Ratio(exp.assigned, exp.total), analytics.Ratio(exp.used, exp.total)
	k.RenewingCustomers, k.RenewingAssignmentPct, k.RenewingUsagePct = ren.customers, analytics.Ratio(ren.assigned, ren.total), analytics.Ratio(ren.used, ren.total)
	k.LowAssignment = low.customers
	k.LowAssignmentPct, k.LowAssignmentUsageWhenAssigned, k.LowAssignmentUnassigned = analytics.Ratio(low.assigned, low.total), analytics.Ratio(low.used, low.assigned), pw.lowUnassigned
	k.OverLicenseLimit, k.OverageCustomers, k.OverageLicenses = pw.overCustomers, pw.overCustomers, pw.overL
	if pw.overCustomers > 0 {
		avg := float64(pw.overL) / float64(pw.overCustomers)
		k.OverageAvgPerCustomer = &avg
	}
	k.CallingUsersTrend = hist.callingUsersTrend(k.PartnerID, k.CallingUsers)
	return k
}

// customer writes one counted customer's rows of the status, recently added,
// expiring, renewing, low-assignment and overage tables, and adds to its
// partner's KPIs.
func (a *WeeklyAnalytics) customer(cw *customerWeek, pw *partnerWeek, week analytics.Week, w periods.Period, t *weekTables, hist *weekHistory) error {
	c, pid, weekEnd := cw.c, cw.c.PartnerID, w.End()
	k := &pw.k
	k.TotalCustomers++
	for _, st := range week.CustomerStatuses(analytics.CustomerFacts{Subscriptions: cw.subs, Overage: cw.overCustomer, LastLogin: c.LastAdminLoginAt}) {
		if err := t.customerStatus.add(model.CustomerStatus{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName, Status: st}); err != nil {
			return err
		}
	}
	for i := range cw.subs {
		s := &cw.subs[i]
		if err := t.subStatus.add(model.SubscriptionStatus{PartnerID: pid, CustomerID: c.CustomerID, SubscriptionID: s.SubscriptionID,
			SubscriberID: s.SubscriberID, Product: s.Product, Status: week.SubscriptionStatus(s),
			ProvisioningStatus: analytics.ProvisioningStatus(s.ProvisioningStatuses), EndDate: s.EndDate,
			LicensesTotal: s.LicensesTotal, LicensesAssigned: s.LicensesAssigned, LicensesUsed7d: s.LicensesUsed7d,
			AssignmentPct: analytics.Ratio(s.LicensesAssigned, s.LicensesTotal), UsagePct: analytics.Ratio(s.LicensesUsed7d, s.LicensesTotal)}); err != nil {
			return err
		}
	}

	// Recently added: organisations created within 90 days of the week's end.
	if age := int64(weekEnd.Sub(c.CreatedAt).Hours() / 24); age >= 0 && age < 90 {
		k.RecentlyAddedCustomers++
		k.RecentlyAddedLicenses += cw.total
		for _, s := range cw.activeSubs {
			if err := t.recentlyAdded.add(model.RecentlyAdded{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName,
				SubscriptionID: s.SubscriptionID, SubscriberID: s.SubscriberID, DaysSinceAdded: age, TotalLicenses: s.LicensesTotal,
				Used: s.LicensesUsed7d, Assigned: s.LicensesAssigned, Available: s.LicensesTotal - s.LicensesAssigned,
				WeeklyAssignmentChange: change(s, cw.prevSubs, func(x *model.Subscription) int64 { return x.LicensesAssigned }),
				WeeklyUsageChange:      change(s, cw.prevSubs, func(x *model.Subscription) int64 { return x.LicensesUsed7d })}); err != nil {
				return err
			}
		}
	}

	// Expiring (not auto-renewing) and renewing within 90 days.
	var expiring, renewing bool
	for _, s := range cw.activeSubs {
		if !week.Within(s.EndDate, 90) {
			continue
		}
		row := model.Expiring{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName, SubscriptionID: s.SubscriptionID,
			SubscriberID: s.SubscriberID, DaysTo: int64(week.DaysTo(s.EndDate)), TotalLicenses: s.LicensesTotal, Used: s.LicensesUsed7d,
			Assigned: s.LicensesAssigned, Available: s.LicensesTotal - s.LicensesAssigned,
			Usage3Months: hist.usageTrend(s.SubscriberID, analytics.Ratio(s.LicensesUsed7d, s.LicensesTotal))}
		acc, out := &pw.exp, t.expiring
		if s.AutoRenew {
			acc, out, renewing = &pw.ren, t.renewing, true
		} else {
			expiring = true
		}
		if err := out.add(row); err != nil {
			return err
		}
		acc.total += s.LicensesTotal
		acc.assigned += s.LicensesAssigned
		acc.used += s.LicensesUsed7d
	}
	if expiring {
		pw.exp.customers++
	}
	if renewing {
		pw.ren.customers++
	}

	// Low assignment: bottom quartile of the partner's customers with licenses, and below LowBelow.
	if cw.hasLicenses && analytics.IsLow(cw.ratio, pw.cutoff, a.LowBelow) {
		pw.low.customers++
		pw.low.total += cw.total
		pw.low.assigned += cw.assigned
		pw.low.used += cw.used
		pw.lowUnassigned += cw.total - cw.assigned
		for _, s := range cw.activeSubs {
			if err := t.low.add(model.LowAssignment{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName,
				SubscriptionID: s.SubscriptionID, SubscriberID: s.SubscriberID, MonthsSinceAdded: analytics.MonthsBetween(c.CreatedAt, weekEnd),
				Assigned: s.LicensesAssigned, AssignedPct: analytics.Ratio(s.LicensesAssigned, s.LicensesTotal), TotalLicenses: s.LicensesTotal,
				Used: s.LicensesUsed7d, Available: s.LicensesTotal - s.LicensesAssigned,
				WeeklyAssignmentChange: change(s, cw.prevSubs, func(x *model.Subscription) int64 { return x.LicensesAssigned })}); err != nil {
				return err
			}
		}
	}

	// Overage.
	if cw.overCustomer {
		pw.overCustomers++
		for i := range cw.subs {
			s, o := &cw.subs[i], cw.overage[i]
			if o == 0 {
				continue
			}
			pw.overL += o
			if err := t.overage.add(model.Overage{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName,
				SubscriptionID: s.SubscriptionID, SubscriberID: s.SubscriberID, MonthsRemaining: analytics.MonthsBetween(weekEnd, s.EndDate.Time()),
				AutoRenew: s.AutoRenew, TotalLicenses: s.LicensesTotal, Assigned: s.LicensesAssigned,
				AssignedPct: analytics.Ratio(s.LicensesAssigned, s.LicensesTotal), Used: s.LicensesUsed7d,
				UsedPct: analytics.Ratio(s.LicensesUsed7d, s.LicensesTotal), Overage: o}); err != nil {
				return err
			}
		}
	}
	return nil
}

// change is this Saturday's value minus the Saturday before's (null if the
// subscription did not exist then; a subscription stays with its customer).
func change(s *model.Subscription, before []model.Subscription, v func(*model.Subscription) int64) *int64 {
	for i := range before {
		if before[i].SubscriberID == s.SubscriberID {
			d := v(s) - v(&before[i])
			return &d
		}
	}
	return nil
}

// weekHistory holds the trend inputs of earlier weeks (by index in weeks; nil
// where a week is not published): their per-customer tables are read a
// customer at a time, alongside this week's inputs.
type weekHistory struct {
	weeks        []periods.Period
	callingUsers []map[string]int64 // partner → calling users (a row per partner)
	subs         []*histTable[model.SubscriptionStatus]
	usage        []*histTable[model.CallingUsage] // the 8-week trends' weeks only
	quality      []*histTable[model.CallQuality]

	// The current customer's rows of each week.
	curSubs    [][]model.SubscriptionStatus
	curUsage   [][]model.CallingUsage
	curQuality [][]model.CallQuality
}

func (a *WeeklyAnalytics) readHistory(ctx context.Context, store storage.Store, region string, h *history) (wh *weekHistory, err error) {
	n := len(h.weeks)
	wh = &weekHistory{weeks: h.weeks, callingUsers: make([]map[string]int64, n), subs: make([]*histTable[model.SubscriptionStatus], n),
		usage: make([]*histTable[model.CallingUsage], n), quality: make([]*histTable[model.CallQuality], n),
		curSubs: make([][]model.SubscriptionStatus, n), curUsage: make([][]model.CallingUsage, n), curQuality: make([][]model.CallQuality, n)}
	defer func() {
		if err != nil {
			wh.close()
			err = fmt.Errorf("trend input: %w", err)
		}
	}()
	for i, p := range h.weeks {
		if !h.published[p.ID()] {
			continue
		}
		key := func(table string) string { return AnalyticsKey(table, region, p) }
		if wh.subs[i], err = openHist(ctx, store, key("subscription_status"), func(r *model.SubscriptionStatus) string { return r.CustomerID }); err != nil {
			return
		}
		if i < wh.recent() {
			continue // only the 3-month usage trend reaches this far back
		}
		kpis, err := readAll[model.KPIs](ctx, store, key("kpis"))
		if err != nil {
			return wh, err
		}
		wh.callingUsers[i] = map[string]int64{}
		for _, k := range kpis {
			wh.callingUsers[i][k.PartnerID] = k.CallingUsers
		}
		if wh.usage[i], err = openHist(ctx, store, key("calling_usage"), func(r *model.CallingUsage) string { return r.CustomerID }); err != nil {
			return wh, err
		}
		if wh.quality[i], err = openHist(ctx, store, key("call_quality"), func(r *model.CallQuality) string { return r.CustomerID }); err != nil {
			return wh, err
		}
	}
	return wh, nil
}

func (wh *weekHistory) close() {
	for i := range wh.weeks {
		wh.subs[i].close()
		wh.usage[i].close()
		wh.quality[i].close()
	}
}

// recent is the index of the first earlier week in the 8-week trends.
func (wh *weekHistory) recent() int { return len(wh.weeks) - (trendWeeks - 1) }

// customer reads a customer's rows of the earlier weeks (customers in id order).
func (wh *weekHistory) customer(id string) (err error) {
	for i := range wh.weeks {
		if wh.curSubs[i], err = wh.subs[i].rowsOf(id); err != nil {
			return err
		}
		if wh.curUsage[i], err = wh.usage[i].rowsOf(id); err != nil {
			return err
		}
		if wh.curQuality[i], err = wh.quality[i].rowsOf(id); err != nil {
			return err
		}
	}
	return nil
}

// usageTrend is the last 13 weekly usage % of one of the customer's
// subscriptions, oldest first.
func (wh *weekHistory) usageTrend(subscriber string, now *float64) []*float64 {
	out := make([]*float64, 0, usageWeeks)
	for i := range wh.weeks {
		var v *float64
		for _, s := range wh.curSubs[i] {
			if s.SubscriberID == subscriber {
				v = copyFloat(s.UsagePct)
			}
		}
		out = append(out, v)
	}
	return append(out, now)
}

// callsTrend is the customer's 8-week trend of calls: null for a week not
// published, 0 for a published week without the customer.
func (wh *weekHistory) callsTrend(now int64) []*int64 {
	out := make([]*int64, 0, trendWeeks)
	for i := wh.recent(); i < len(wh.weeks); i++ {
		if wh.usage[i] == nil {
			out = append(out, nil)
			continue
		}
		var v int64
		for _, u := range wh.curUsage[i] {
			v = u.Calls
		}
		out = append(out, &v)
	}
	return append(out, &now)
}

// poorTrend is the customer's 8-week trend of poor % on an endpoint type.
func (wh *weekHistory) poorTrend(endpoint string, now *float64) []*float64 {
	out := make([]*float64, 0, trendWeeks)
	for i := wh.recent(); i < len(wh.weeks); i++ {
		var v *float64
		for _, q := range wh.curQuality[i] {
			if q.EndpointType == endpoint {
				v = copyFloat(q.PoorPct)
			}
		}
		out = append(out, v)
	}
	return append(out, now)
}

// callingUsersTrend is a partner's 8-week trend of calling users.
func (wh *weekHistory) callingUsersTrend(partner string, now int64) []*int64 {
	out := make([]*int64, 0, trendWeeks)
	for i := wh.recent(); i < len(wh.weeks); i++ {
		if m := wh.callingUsers[i]; m != nil {
			v := m[partner]
			out = append(out, &v)
		} else {
			out = append(out, nil)
		}
	}
	return append(out, &now)
}

// copyFloat copies a value out of a reader's row buffer.
func copyFloat(p *float64) *float64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// histTable is one earlier week's table, read a customer at a time when its
// rows are sorted by customer (as analytics writes them); a table written in
// another order (by an earlier tally, which grouped rows by partner) is read
// whole instead.
type histTable[T any] struct {
	s     *stream[T]
	whole map[string][]T
}

// customerKey reads only a table's customer_id.
type customerKey struct {
	CustomerID string `parquet:"customer_id"`
}

func openHist[T any](ctx context.Context, store storage.Store, key string, of func(*T) string) (*histTable[T], error) {
	sorted, err := sortedByCustomer(ctx, store, key)
	if err != nil {
		return nil, err
	}
	if sorted {
		s, err := openStream(ctx, store, key, of)
		return &histTable[T]{s: s}, err
	}
	rows, err := readAll[T](ctx, store, key)
	if err != nil {
		return nil, err
	}
	h := &histTable[T]{whole: map[string][]T{}}
	for i := range rows {
		h.whole[of(&rows[i])] = append(h.whole[of(&rows[i])], rows[i])
	}
	return h, nil
}

func sortedByCustomer(ctx context.Context, store storage.Store, key string) (bool, error) {
	r, err := openInput[customerKey](ctx, store, key)
	if err != nil {
		return false, err
	}
	defer r.Close()
	prev := ""
	for row, ok := r.Next(); ok; row, ok = r.Next() {
		if row.CustomerID < prev {
			return false, nil
		}
		prev = row.CustomerID
	}
	if err := r.Err(); err != nil {
		return false, err
	}
	return true, nil
}

func (h *histTable[T]) rowsOf(customer string) ([]T, error) {
	switch {
	case h == nil:
		return nil, nil
	case h.whole != nil:
		return h.whole[customer], nil
	}
	return h.s.rowsOf(customer)
}

func (h *histTable[T]) close() {
	if h != nil {
		h.s.close()
	}
}

// weekCalls turns the week's call legs of customers with Calling into the
// calling tables, a customer at a time: the week's 7 call files are each
// sorted by customer, so they are merged customer by customer, and a
// customer's rows are written out before the next customer's are read.
type weekCalls struct {
	th analytics.Thresholds
}

type customerCalls struct {
	calls, legs, seconds, videoSeconds int64
	users                              map[string]*model.CallingUser
	lastCall                           map[string]string // user → the call of their latest leg (to count calls, not legs)
	quality                            map[string]*model.CallQuality
	queue                              analytics.Queue
	queued                             bool
}

// customer reads a calling customer's legs of the week's 7 days and writes its
// rows of calling_users, calling_usage, call_quality and call_queues; it
// returns the customer's calling users.
func (wc *weekCalls) customer(in *weekInputs, cw *customerWeek, t *weekTables, wh *weekHistory) (int64, error) {
	cc := &customerCalls{users: map[string]*model.CallingUser{}, lastCall: map[string]string{}, quality: map[string]*model.CallQuality{}}
	for _, d := range in.calls {
		var day dayCalls
		err := d.each(cw.c.CustomerID, func(leg *analytics.Leg) { wc.add(cc, cw, &day, leg) })
		if err != nil {
			return 0, err
		}
		day.flush(cc)
	}
	return int64(len(cc.users)), wc.rows(cc, cw, t, wh)
}

// dayCalls is the call a day's legs are at. Legs of one call are adjacent (the
// file is sorted by leg id, which starts with the call id).
type dayCalls struct {
	call      string
	callMax   int64
	callVideo bool
}

// flush counts the call the legs were at.
func (d *dayCalls) flush(cc *customerCalls) {
	if d.call != "" {
		cc.calls++
		cc.seconds += d.callMax
		if d.callVideo {
			cc.videoSeconds += d.callMax
		}
	}
}

// add counts one leg of one customer's day, read as it streams by (a large
// customer's day of legs is never held).
func (wc *weekCalls) add(cc *customerCalls, cw *customerWeek, d *dayCalls, leg *analytics.Leg) {
	if leg.CallID != d.call {
		d.flush(cc)
		d.call, d.callMax, d.callVideo = leg.CallID, 0, false
		if leg.QueueOutcome != nil {
			cc.queued = true
			cc.queue.Add(*leg.QueueOutcome, deref64(leg.QueueWaitSeconds))
		}
	}
	d.callMax = max(d.callMax, leg.DurationSeconds)
	d.callVideo = d.callVideo || leg.IsVideo
	cc.legs++
	if leg.UserID != nil {
		u := cc.users[*leg.UserID]
		if u == nil {
			u = &model.CallingUser{PartnerID: cw.c.PartnerID, CustomerID: leg.CustomerID, UserID: *leg.UserID}
			cc.users[*leg.UserID] = u
		}
		if cc.lastCall[u.UserID] != d.call {
			u.Calls++
		}
		u.Legs++
		u.Minutes += leg.DurationSeconds // seconds until rows() converts
		cc.lastCall[u.UserID] = d.call
	}
	q := cc.quality[leg.DeviceType]
	if q == nil {
		q = &model.CallQuality{PartnerID: cw.c.PartnerID, CustomerID: leg.CustomerID, EndpointType: leg.DeviceType}
		cc.quality[leg.DeviceType] = q
	}
	q.Legs++
	if wc.th.Poor(leg) {
		q.PoorLegs++
	}
}

// rows makes one customer's rows of the calling tables.
func (wc *weekCalls) rows(cc *customerCalls, cw *customerWeek, t *weekTables, wh *weekHistory) error {
	id := cw.c.CustomerID
	if err := t.callingUsage.add(model.CallingUsage{PartnerID: cw.c.PartnerID, CustomerID: id, CustomerName: cw.c.CustomerName,
		CallingUsers: int64(len(cc.users)), Calls: cc.calls, Legs: cc.legs, Minutes: cc.seconds / 60, VideoMinutes: cc.videoSeconds / 60,
		CallsTrend: wh.callsTrend(cc.calls)}); err != nil {
		return err
	}
	users := make([]*model.CallingUser, 0, len(cc.users))
	for _, u := range cc.users {
		users = append(users, u)
	}
	slices.SortFunc(users, func(a, b *model.CallingUser) int {
		return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(b.Minutes, a.Minutes), cmp.Compare(a.UserID, b.UserID))
	})
	rows := make([]model.CallingUser, len(users))
	for i, u := range users {
		rows[i] = *u
		rows[i].Minutes /= 60
		rows[i].RankInCustomer = int64(i + 1)
	}
	if err := t.callingUsers.add(rows...); err != nil {
		return err
	}
	endpoints := make([]string, 0, len(cc.quality))
	for e := range cc.quality {
		endpoints = append(endpoints, e)
	}
	sort.Strings(endpoints)
	for _, e := range endpoints {
		q := *cc.quality[e]
		q.PoorPct = analytics.Ratio(q.PoorLegs, q.Legs)
		q.PoorPctTrend = wh.poorTrend(e, q.PoorPct)
		if err := t.callQuality.add(q); err != nil {
			return err
		}
	}
	if !cc.queued {
		return nil
	}
	q := &cc.queue
	return t.callQueues.add(model.CallQueues{PartnerID: cw.c.PartnerID, CustomerID: id, Calls: q.Calls, Answered: q.Answered,
		Abandoned: q.Abandoned, TimedOut: q.TimedOut, Overflowed: q.Overflowed, Forwarded: q.Forwarded,
		AvgAnswerSeconds: q.AvgAnswerSeconds(), AvgAbandonWaitSeconds: q.AvgAbandonWaitSeconds(), AbandonRate: q.AbandonRate()})
}

func deref64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
