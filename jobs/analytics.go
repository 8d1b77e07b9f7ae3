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

// history is what earlier weeks published, for trends.
type history struct {
	weeks     []periods.Period // W-12 … W-1, oldest first
	published map[string]bool  // week id → analytics complete
}

func (a *WeeklyAnalytics) history(ctx context.Context, w periods.Period) (*history, []string, error) {
	h := &history{published: map[string]bool{}}
	var missing []string
	p := w
	for i := 0; i < usageWeeks-1; i++ {
		p = p.Prev()
		h.weeks = append([]periods.Period{p}, h.weeks...)
	}
	for _, p := range h.weeks {
		_, done, err := a.Ledger.Complete(ctx, Analytics, p.ID())
		if err != nil {
			return nil, nil, err
		}
		h.published[p.ID()] = done
		if !done {
			missing = append(missing, p.ID())
		}
	}
	return h, missing, nil
}

// Run computes every region from that region's files only.
func (a *WeeklyAnalytics) Run(ctx context.Context, rc *runner.RunContext) error {
	h, missing, err := a.history(ctx, rc.Period)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		rc.Log.Warn().Strs("weeks", missing).Msg("earlier weeks' analytics are missing: their trend values are null (tally backfill analytics fills them)")
	}
	rc.Note("missing_trend_weeks", nonNil(missing))
	var kpis []map[string]any
	for _, region := range rc.Regions {
		store, err := rc.Stores.For(region)
		if err != nil {
			return runner.Permanent(err)
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

// weekTables are one region's analytics rows.
type weekTables struct {
	customerStatus []model.CustomerStatus
	subStatus      []model.SubscriptionStatus
	kpis           []model.KPIs
	recentlyAdded  []model.RecentlyAdded
	expiring       []model.Expiring
	renewing       []model.Expiring
	low            []model.LowAssignment
	overage        []model.Overage
	callingUsers   *table[model.CallingUser] // streamed (the largest)
	callingUsage   []model.CallingUsage
	callQuality    []model.CallQuality
	callQueues     []model.CallQueues
}

// customerWeek is one counted customer at the week's end.
type customerWeek struct {
	c                     model.Customer
	subs                  []model.Subscription
	total, assigned, used int64 // summed over active subscriptions
	ratio                 float64
	overageBySubscriber   map[string]int64
	calling               bool
	activeSubs            []*model.Subscription
	hasLicenses           bool
}

func (a *WeeklyAnalytics) region(ctx context.Context, rc *runner.RunContext, store storage.Store, region string, h *history) ([]model.KPIs, error) {
	w := rc.Period
	sat, prevSat := w.LastDay(), periods.Day(w.Start).Prev()
	week := analytics.Week{End: model.DateOf(w.End())}
	weekEnd := w.End()

	customers, err := readAll[model.Customer](ctx, store, InventoryKey("customers", region, sat))
	if err != nil {
		return nil, err
	}
	subs, err := readAll[model.Subscription](ctx, store, InventoryKey("subscriptions", region, sat))
	if err != nil {
		return nil, err
	}
	prevSubs, err := readAll[model.Subscription](ctx, store, InventoryKey("subscriptions", region, prevSat))
	if err != nil {
		return nil, err
	}
	usage, err := readAll[model.SubscriptionUsage](ctx, store, UsageKey("subscription", region, sat))
	if err != nil {
		return nil, err
	}
	before := map[string]model.Subscription{}
	for _, s := range prevSubs {
		before[s.SubscriberID] = s
	}
	usageBySub := map[string][]model.SubscriptionUsage{}
	for _, u := range usage {
		usageBySub[u.SubscriberID] = append(usageBySub[u.SubscriberID], u)
	}
	subsByCustomer := map[string][]model.Subscription{}
	for _, s := range subs {
		subsByCustomer[s.CustomerID] = append(subsByCustomer[s.CustomerID], s)
	}

	// Counted customers, grouped by partner (customers arrive sorted by id).
	var partners []string
	byPartner := map[string][]*customerWeek{}
	byID := map[string]*customerWeek{}
	for _, c := range customers {
		if !analytics.Counted(c.Products) {
			continue // Messaging-only customers are left out
		}
		cw := &customerWeek{c: c, subs: subsByCustomer[c.CustomerID], overageBySubscriber: map[string]int64{}, calling: analytics.HasCalling(c.Products)}
		for i := range cw.subs {
			s := &cw.subs[i]
			if week.Active(s) {
				cw.activeSubs = append(cw.activeSubs, s)
				cw.total += s.LicensesTotal
				cw.assigned += s.LicensesAssigned
				cw.used += s.LicensesUsed7d
			}
			if o := analytics.Overage(usageBySub[s.SubscriberID]); o > 0 {
				cw.overageBySubscriber[s.SubscriberID] = o
			}
		}
		cw.hasLicenses = cw.total > 0
		if cw.hasLicenses {
			cw.ratio = float64(cw.assigned) / float64(cw.total)
		}
		if _, ok := byPartner[c.PartnerID]; !ok {
			partners = append(partners, c.PartnerID)
		}
		byPartner[c.PartnerID] = append(byPartner[c.PartnerID], cw)
		byID[c.CustomerID] = cw
	}
	sort.Strings(partners)

	hist, err := a.readHistory(ctx, store, region, h)
	if err != nil {
		return nil, err
	}
	// calling_users is streamed as the calls are read; the other tables are
	// written when the region is done.
	callingUsers, err := openTable[model.CallingUser](ctx, rc, region, AnalyticsKey("calling_users", region, rc.Period))
	if err != nil {
		return nil, err
	}
	var t weekTables
	t.callingUsers = callingUsers
	calls, err := a.callRows(ctx, store, region, w, byID, callingUsers, &t, hist, h)
	if err != nil {
		callingUsers.abort(err)
		return nil, err
	}

	for _, pid := range partners {
		k := model.KPIs{PartnerID: pid}
		var ratios []float64
		for _, cw := range byPartner[pid] {
			if cw.hasLicenses {
				ratios = append(ratios, cw.ratio)
			}
		}
		cutoff := analytics.LowAssignmentCutoff(ratios)
		var exp, ren, low struct{ customers, total, assigned, used int64 }
		var lowUnassigned, overCustomers, overLicenses int64
		for _, cw := range byPartner[pid] {
			c := cw.c
			k.TotalCustomers++
			for _, st := range week.CustomerStatuses(analytics.CustomerFacts{Subscriptions: cw.subs, Overage: len(cw.overageBySubscriber) > 0, LastLogin: c.LastAdminLoginAt}) {
				t.customerStatus = append(t.customerStatus, model.CustomerStatus{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName, Status: st})
			}
			for i := range cw.subs {
				s := &cw.subs[i]
				t.subStatus = append(t.subStatus, model.SubscriptionStatus{PartnerID: pid, CustomerID: c.CustomerID, SubscriptionID: s.SubscriptionID,
					SubscriberID: s.SubscriberID, Product: s.Product, Status: week.SubscriptionStatus(s),
					ProvisioningStatus: analytics.ProvisioningStatus(s.ProvisioningStatuses), EndDate: s.EndDate,
					LicensesTotal: s.LicensesTotal, LicensesAssigned: s.LicensesAssigned, LicensesUsed7d: s.LicensesUsed7d,
					AssignmentPct: analytics.Ratio(s.LicensesAssigned, s.LicensesTotal), UsagePct: analytics.Ratio(s.LicensesUsed7d, s.LicensesTotal)})
			}

			// Recently added: organisations created within 90 days of the week's end.
			if age := int64(weekEnd.Sub(c.CreatedAt).Hours() / 24); age >= 0 && age < 90 {
				k.RecentlyAddedCustomers++
				k.RecentlyAddedLicenses += cw.total
				for _, s := range cw.activeSubs {
					t.recentlyAdded = append(t.recentlyAdded, model.RecentlyAdded{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName,
						SubscriptionID: s.SubscriptionID, SubscriberID: s.SubscriberID, DaysSinceAdded: age, TotalLicenses: s.LicensesTotal,
						Used: s.LicensesUsed7d, Assigned: s.LicensesAssigned, Available: s.LicensesTotal - s.LicensesAssigned,
						WeeklyAssignmentChange: change(s, before, func(x model.Subscription) int64 { return x.LicensesAssigned }),
						WeeklyUsageChange:      change(s, before, func(x model.Subscription) int64 { return x.LicensesUsed7d })})
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
				acc := &exp
				if s.AutoRenew {
					acc, renewing = &ren, true
					t.renewing = append(t.renewing, row)
				} else {
					expiring = true
					t.expiring = append(t.expiring, row)
				}
				acc.total += s.LicensesTotal
				acc.assigned += s.LicensesAssigned
				acc.used += s.LicensesUsed7d
			}
			if expiring {
				exp.customers++
			}
			if renewing {
				ren.customers++
			}

			// Low assignment: bottom quartile of the partner's customers with licenses, and below LowBelow.
			if cw.hasLicenses && analytics.IsLow(cw.ratio, cutoff, a.LowBelow) {
				low.customers++
				low.total += cw.total
				low.assigned += cw.assigned
				low.used += cw.used
				lowUnassigned += cw.total - cw.assigned
				for _, s := range cw.activeSubs {
					t.low = append(t.low, model.LowAssignment{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName,
						SubscriptionID: s.SubscriptionID, SubscriberID: s.SubscriberID, MonthsSinceAdded: analytics.MonthsBetween(c.CreatedAt, weekEnd),
						Assigned: s.LicensesAssigned, AssignedPct: analytics.Ratio(s.LicensesAssigned, s.LicensesTotal), TotalLicenses: s.LicensesTotal,
						Used: s.LicensesUsed7d, Available: s.LicensesTotal - s.LicensesAssigned,
						WeeklyAssignmentChange: change(s, before, func(x model.Subscription) int64 { return x.LicensesAssigned })})
				}
			}

			// Overage.
			if len(cw.overageBySubscriber) > 0 {
				overCustomers++
				for i := range cw.subs {
					s := &cw.subs[i]
					o := cw.overageBySubscriber[s.SubscriberID]
					if o == 0 {
						continue
					}
					overLicenses += o
					t.overage = append(t.overage, model.Overage{PartnerID: pid, CustomerID: c.CustomerID, CustomerName: c.CustomerName,
						SubscriptionID: s.SubscriptionID, SubscriberID: s.SubscriberID, MonthsRemaining: analytics.MonthsBetween(weekEnd, s.EndDate.Time()),
						AutoRenew: s.AutoRenew, TotalLicenses: s.LicensesTotal, Assigned: s.LicensesAssigned,
						AssignedPct: analytics.Ratio(s.LicensesAssigned, s.LicensesTotal), Used: s.LicensesUsed7d,
						UsedPct: analytics.Ratio(s.LicensesUsed7d, s.LicensesTotal), Overage: o})
				}
			}
		}
		k.ApproachingExpiration, k.ApproachingRenewal = exp.customers, ren.customers
		k.ExpiringCustomers, k.ExpiringAssignmentPct, k.ExpiringUsagePct = exp.customers, analytics.Ratio(exp.assigned, exp.total), analytics.Ratio(exp.used, exp.total)
		k.RenewingCustomers, k.RenewingAssignmentPct, k.RenewingUsagePct = ren.customers, analytics.Ratio(ren.assigned, ren.total), analytics.Ratio(ren.used, ren.total)
		k.LowAssignment = low.customers
		k.LowAssignmentPct, k.LowAssignmentUsageWhenAssigned, k.LowAssignmentUnassigned = analytics.Ratio(low.assigned, low.total), analytics.Ratio(low.used, low.assigned), lowUnassigned
		k.OverLicenseLimit, k.OverageCustomers, k.OverageLicenses = overCustomers, overCustomers, overLicenses
		if overCustomers > 0 {
			avg := float64(overLicenses) / float64(overCustomers)
			k.OverageAvgPerCustomer = &avg
		}
		k.CallingUsers = calls.partnerUsers[pid]
		k.CallingUsersTrend = trendInt(hist.callingUsers, pid, k.CallingUsers, h)
		t.kpis = append(t.kpis, k)
	}
	if err := a.write(ctx, rc, region, &t); err != nil {
		t.callingUsers.abort(err) // when a table opened before it failed (a no-op once committed)
		return nil, err
	}
	return t.kpis, nil
}

// change is this Saturday's value minus the Saturday before's (null if the
// subscription did not exist then).
func change(s *model.Subscription, before map[string]model.Subscription, v func(model.Subscription) int64) *int64 {
	prev, ok := before[s.SubscriberID]
	if !ok {
		return nil
	}
	d := v(*s) - v(prev)
	return &d
}

// weekHistory holds the trend inputs read from earlier weeks, by week id.
type weekHistory struct {
	usagePct     map[string]map[string]*float64 // week → subscriber → usage %
	callingUsers map[string]map[string]int64    // week → partner → calling users
	calls        map[string]map[string]int64    // week → customer → calls
	poorPct      map[string]map[string]*float64 // week → customer/endpoint → poor %
	weeks        []periods.Period
}

func (a *WeeklyAnalytics) readHistory(ctx context.Context, store storage.Store, region string, h *history) (*weekHistory, error) {
	wh := &weekHistory{usagePct: map[string]map[string]*float64{}, callingUsers: map[string]map[string]int64{},
		calls: map[string]map[string]int64{}, poorPct: map[string]map[string]*float64{}, weeks: h.weeks}
	for i, p := range h.weeks {
		if !h.published[p.ID()] {
			continue
		}
		id := p.ID()
		subs, err := readAll[model.SubscriptionStatus](ctx, store, AnalyticsKey("subscription_status", region, p))
		if err != nil {
			return nil, fmt.Errorf("trend input: %w", err)
		}
		wh.usagePct[id] = map[string]*float64{}
		for _, s := range subs {
			wh.usagePct[id][s.SubscriberID] = s.UsagePct
		}
		if i < len(h.weeks)-(trendWeeks-1) {
			continue // only the 3-month usage trend reaches this far back
		}
		kpis, err := readAll[model.KPIs](ctx, store, AnalyticsKey("kpis", region, p))
		if err != nil {
			return nil, fmt.Errorf("trend input: %w", err)
		}
		wh.callingUsers[id] = map[string]int64{}
		for _, k := range kpis {
			wh.callingUsers[id][k.PartnerID] = k.CallingUsers
		}
		usage, err := readAll[model.CallingUsage](ctx, store, AnalyticsKey("calling_usage", region, p))
		if err != nil {
			return nil, fmt.Errorf("trend input: %w", err)
		}
		wh.calls[id] = map[string]int64{}
		for _, u := range usage {
			wh.calls[id][u.CustomerID] = u.Calls
		}
		quality, err := readAll[model.CallQuality](ctx, store, AnalyticsKey("call_quality", region, p))
		if err != nil {
			return nil, fmt.Errorf("trend input: %w", err)
		}
		wh.poorPct[id] = map[string]*float64{}
		for _, q := range quality {
			wh.poorPct[id][q.CustomerID+"/"+q.EndpointType] = q.PoorPct
		}
	}
	return wh, nil
}

// usageTrend is the last 13 weekly usage % of a subscription, oldest first.
func (wh *weekHistory) usageTrend(subscriber string, now *float64) []*float64 {
	out := make([]*float64, 0, usageWeeks)
	for _, p := range wh.weeks {
		out = append(out, wh.usagePct[p.ID()][subscriber])
	}
	return append(out, now)
}

// trendInt is an 8-week trend of a count, oldest first: null for a week not
// published, 0 for a published week without the key.
func trendInt(byWeek map[string]map[string]int64, key string, now int64, h *history) []*int64 {
	out := make([]*int64, 0, trendWeeks)
	for _, p := range h.weeks[len(h.weeks)-(trendWeeks-1):] {
		if m, ok := byWeek[p.ID()]; ok {
			v := m[key]
			out = append(out, &v)
		} else {
			out = append(out, nil)
		}
	}
	return append(out, &now)
}

func trendFloat(byWeek map[string]map[string]*float64, key string, now *float64, h *history) []*float64 {
	out := make([]*float64, 0, trendWeeks)
	for _, p := range h.weeks[len(h.weeks)-(trendWeeks-1):] {
		out = append(out, byWeek[p.ID()][key])
	}
	return append(out, now)
}

// weekCalls turns the week's call legs of customers with Calling into the
// calling tables, a customer at a time: the week's 7 call files are each
// sorted by customer, so they are merged customer by customer, and a
// customer's users are written out before the next customer's are read.
type weekCalls struct {
	th           analytics.Thresholds
	partnerUsers map[string]int64
}

type customerCalls struct {
	calls, legs, seconds, videoSeconds int64
	users                              map[string]*model.CallingUser
	lastCall                           map[string]string // user → the call of their latest leg (to count calls, not legs)
	quality                            map[string]*model.CallQuality
	queue                              analytics.Queue
	queued                             bool
}

// callRows writes calling_users (to users, streamed) and appends calling_usage,
// call_quality and call_queues to t, for every calling customer in id order.
func (a *WeeklyAnalytics) callRows(ctx context.Context, store storage.Store, region string, w periods.Period, byID map[string]*customerWeek,
	users *table[model.CallingUser], t *weekTables, wh *weekHistory, h *history) (*weekCalls, error) {
	wc := &weekCalls{th: a.Thresholds, partnerUsers: map[string]int64{}}
	var days []*stream[model.CallLeg]
	defer func() {
		for _, d := range days {
			d.close()
		}
	}()
	for _, day := range w.Days() {
		d, err := openStream(ctx, store, CallsKey(region, day), func(l *model.CallLeg) string { return l.CustomerID })
		if err != nil {
			return nil, err
		}
		days = append(days, d)
	}
	ids := make([]string, 0, len(byID))
	for id, cw := range byID {
		if cw.calling {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cw := byID[id]
		cc := &customerCalls{users: map[string]*model.CallingUser{}, lastCall: map[string]string{}, quality: map[string]*model.CallQuality{}}
		for i, d := range days {
			// Customers before id (no Calling, or not counted) are passed over.
			for k, ok := d.peek(); ok && k < id; k, ok = d.peek() {
				if _, err := d.take(k); err != nil {
					return nil, fmt.Errorf("%s: %w", CallsKey(region, w.Days()[i]), err)
				}
			}
			legs, err := d.take(id)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", CallsKey(region, w.Days()[i]), err)
			}
			wc.add(cc, cw, legs)
		}
		wc.partnerUsers[cw.c.PartnerID] += int64(len(cc.users))
		if err := wc.rows(cc, cw, users, t, wh, h); err != nil {
			return nil, err
		}
	}
	return wc, nil
}

// add counts one day's legs of one customer. Legs of one call are adjacent
// (the file is sorted by leg id, which starts with the call id).
func (wc *weekCalls) add(cc *customerCalls, cw *customerWeek, legs []model.CallLeg) {
	var call string
	var callMax int64
	var callVideo bool
	flush := func() {
		if call != "" {
			cc.calls++
			cc.seconds += callMax
			if callVideo {
				cc.videoSeconds += callMax
			}
		}
	}
	for i := range legs {
		leg := &legs[i]
		if leg.CallID != call {
			flush()
			call, callMax, callVideo = leg.CallID, 0, false
			if leg.QueueOutcome != nil {
				cc.queued = true
				cc.queue.Add(*leg.QueueOutcome, deref64(leg.QueueWaitSeconds))
			}
		}
		callMax = max(callMax, leg.DurationSeconds)
		callVideo = callVideo || leg.IsVideo
		cc.legs++
		if leg.UserID != nil {
			u := cc.users[*leg.UserID]
			if u == nil {
				u = &model.CallingUser{PartnerID: cw.c.PartnerID, CustomerID: leg.CustomerID, UserID: *leg.UserID}
				cc.users[*leg.UserID] = u
			}
			if cc.lastCall[u.UserID] != call {
				u.Calls++
			}
			u.Legs++
			u.Minutes += leg.DurationSeconds // seconds until rows() converts
			cc.lastCall[u.UserID] = call
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
	flush()
}

// rows makes one customer's rows of the calling tables.
func (wc *weekCalls) rows(cc *customerCalls, cw *customerWeek, out *table[model.CallingUser], t *weekTables, wh *weekHistory, h *history) error {
	id := cw.c.CustomerID
	t.callingUsage = append(t.callingUsage, model.CallingUsage{PartnerID: cw.c.PartnerID, CustomerID: id, CustomerName: cw.c.CustomerName,
		CallingUsers: int64(len(cc.users)), Calls: cc.calls, Legs: cc.legs, Minutes: cc.seconds / 60, VideoMinutes: cc.videoSeconds / 60,
		CallsTrend: trendInt(wh.calls, id, cc.calls, h)})
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
	if err := out.add(rows...); err != nil {
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
		q.PoorPctTrend = trendFloat(wh.poorPct, id+"/"+e, q.PoorPct, h)
		t.callQuality = append(t.callQuality, q)
	}
	if cc.queued {
		q := &cc.queue
		t.callQueues = append(t.callQueues, model.CallQueues{PartnerID: cw.c.PartnerID, CustomerID: id, Calls: q.Calls, Answered: q.Answered,
			Abandoned: q.Abandoned, TimedOut: q.TimedOut, Overflowed: q.Overflowed, Forwarded: q.Forwarded,
			AvgAnswerSeconds: q.AvgAnswerSeconds(), AvgAbandonWaitSeconds: q.AvgAbandonWaitSeconds(), AbandonRate: q.AbandonRate()})
	}
	return nil
}

func deref64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// write publishes every table of a region, or none.
func (a *WeeklyAnalytics) write(ctx context.Context, rc *runner.RunContext, region string, t *weekTables) error {
	key := func(table string) string { return AnalyticsKey(table, region, rc.Period) }
	tables := []func() (committer, error){
		func() (committer, error) {
			return writeTable(ctx, rc, region, key("customer_status"), t.customerStatus)
		},
		func() (committer, error) { return writeTable(ctx, rc, region, key("subscription_status"), t.subStatus) },
		func() (committer, error) { return writeTable(ctx, rc, region, key("kpis"), t.kpis) },
		func() (committer, error) { return writeTable(ctx, rc, region, key("recently_added"), t.recentlyAdded) },
		func() (committer, error) { return writeTable(ctx, rc, region, key("expiring"), t.expiring) },
		func() (committer, error) { return writeTable(ctx, rc, region, key("renewing"), t.renewing) },
		func() (committer, error) { return writeTable(ctx, rc, region, key("low_assignment"), t.low) },
		func() (committer, error) { return writeTable(ctx, rc, region, key("overage"), t.overage) },
		func() (committer, error) { return t.callingUsers, nil },
		func() (committer, error) { return writeTable(ctx, rc, region, key("calling_usage"), t.callingUsage) },
		func() (committer, error) { return writeTable(ctx, rc, region, key("call_quality"), t.callQuality) },
		func() (committer, error) { return writeTable(ctx, rc, region, key("call_queues"), t.callQueues) },
	}
	opened := make([]committer, 0, len(tables))
	for _, open := range tables {
		c, err := open()
		if err != nil {
			abortAll(opened, err)
			return err
		}
		opened = append(opened, c)
	}
	return commitAll(opened)
}

// writeTable opens a table and writes rows (already in their stable order).
func writeTable[T any](ctx context.Context, rc *runner.RunContext, region, key string, rows []T) (committer, error) {
	t, err := openTable[T](ctx, rc, region, key)
	if err != nil {
		return nil, err
	}
	if err := t.add(rows...); err != nil {
		t.abort(err)
		return nil, err
	}
	return t, nil
}
