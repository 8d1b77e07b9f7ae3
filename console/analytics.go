package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"

	"tally/chart"
	"tally/jobs"
	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/storage"
)

var (
	partnerRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	numberRE  = regexp.MustCompile(`^(–|-?[0-9]+(\.[0-9]+)?( s|%)?)$`)
)

// table is an analytics table as the page shows it.
type table struct {
	Title   string
	KPIs    []kpi
	Headers []string
	Numeric []bool
	Rows    [][]string
	Total   int
}

type kpi struct{ Label, Value string }

// maxRows is how many rows of a table the page shows (the report files have all).
const maxRows = 25

// analytics is one partner in one region for one week: the §7 KPIs, each
// table, and the 8-week trend charts.
func (c *Console) analytics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ctx := r.Context()
	week, err := c.week(ctx, q.Get("week"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	// Which partners and regions have this week's analytics.
	regionsOf := map[string][]string{}
	for _, region := range model.Regions {
		store, err := c.Stores.For(region)
		if err != nil {
			continue
		}
		kpis, err := jobs.ReadTable[model.KPIs](ctx, store, jobs.AnalyticsKey("kpis", region, week))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
		for _, k := range kpis {
			regionsOf[k.PartnerID] = append(regionsOf[k.PartnerID], region)
		}
	}
	partners := make([]string, 0, len(regionsOf))
	for p := range regionsOf {
		partners = append(partners, p)
	}
	sort.Strings(partners)
	data := map[string]any{"Week": week.ID(), "Partners": partners, "WeekEnd": week.End()}
	partner := q.Get("partner")
	if partner == "" && len(partners) > 0 {
		partner = partners[0]
	}
	if partner != "" && !partnerRE.MatchString(partner) {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("partner=%q: a partner id is letters, digits, '.', '_' and '-'", partner))
		return
	}
	data["Partner"] = partner
	regions := regionsOf[partner]
	data["Regions"] = regions
	if len(regions) == 0 {
		data["Empty"] = fmt.Sprintf("No analytics for week %s", week.ID())
		if partner != "" && len(partners) > 0 {
			data["Empty"] = fmt.Sprintf("Partner %s has no analytics for week %s", partner, week.ID())
		}
		c.render(w, r, http.StatusOK, "analytics.html", data)
		return
	}
	region := q.Get("region")
	if region == "" {
		region = regions[0]
	}
	if !model.ValidRegion(region) {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("region=%q: the regions are %v", region, model.Regions))
		return
	}
	if !slices.Contains(regions, region) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("partner %s has no analytics in region %s for week %s (it has: %v)", partner, region, week.ID(), regions))
		return
	}
	data["Region"] = region
	store, err := c.Stores.For(region)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	trends, err := jobs.LoadTrends(ctx, store, region, partner, week, 8)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	data["Charts"] = trends.Charts("chart")
	var missing []string
	for i, ok := range trends.Published {
		if !ok {
			missing = append(missing, trends.Weeks[i])
		}
	}
	data["MissingWeeks"] = missing
	tables, err := analyticsTables(ctx, store, region, partner, week, trends.KPIs)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	data["Tables"] = tables
	if k := trends.KPIs; k != nil {
		data["KPIs"] = []kpi{{"Total customers", fmt.Sprint(k.TotalCustomers)}, {"Approaching expiration (90 days)", fmt.Sprint(k.ApproachingExpiration)},
			{"Approaching renewal (90 days)", fmt.Sprint(k.ApproachingRenewal)}, {"Low license assignment", fmt.Sprint(k.LowAssignment)},
			{"Over license limit", fmt.Sprint(k.OverLicenseLimit)}, {"Calling users", fmt.Sprint(k.CallingUsers)}}
	}
	c.render(w, r, http.StatusOK, "analytics.html", data)
}

// week is the requested week, or the latest one the analytics job completed.
func (c *Console) week(ctx context.Context, id string) (periods.Period, error) {
	if id != "" {
		return periods.Parse(periods.Weekly, id)
	}
	recs, err := c.ledger.All(ctx, jobs.Analytics)
	if err != nil {
		return periods.Period{}, err
	}
	latest := ""
	for _, rec := range recs {
		if rec.Status == runner.StatusSucceeded && rec.Period > latest {
			latest = rec.Period
		}
	}
	if latest == "" {
		return periods.Latest(periods.Weekly, c.Clock.Now()), nil
	}
	return periods.Parse(periods.Weekly, latest)
}

func pctText(p *float64) string {
	if p == nil {
		return "–"
	}
	return chart.Format(*p*100) + "%"
}

func intText(p *int64) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprint(*p)
}

func secondsText(p *float64) string {
	if p == nil {
		return "–"
	}
	return chart.Format(*p) + " s"
}

// analyticsTables reads the week's §7 tables of one partner in one region;
// k is the partner's KPIs of that week (LoadTrends read them).
func analyticsTables(ctx context.Context, store storage.Store, region, partner string, week periods.Period, k *model.KPIs) ([]table, error) {
	var out []table
	if k == nil {
		return nil, nil
	}
	add := func(t table, rows int, each func(i int) []string) {
		t.Total = rows
		for i := 0; i < rows && i < maxRows; i++ {
			t.Rows = append(t.Rows, each(i))
		}
		t.Numeric = make([]bool, len(t.Headers)) // right-aligned: every shown value is a number
		for i := range t.Headers {
			t.Numeric[i] = len(t.Rows) > 0
			for _, row := range t.Rows {
				if !numberRE.MatchString(row[i]) {
					t.Numeric[i] = false
				}
			}
		}
		out = append(out, t)
	}
	ra, err := readPartner[model.RecentlyAdded](ctx, store, jobs.AnalyticsKey("recently_added", region, week), partner, func(r model.RecentlyAdded) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{Title: "Recently added (last 90 days)", KPIs: []kpi{{"New customers", fmt.Sprint(k.RecentlyAddedCustomers)}, {"Total licenses", fmt.Sprint(k.RecentlyAddedLicenses)}},
		Headers: []string{"Customer", "Subscription ID", "Days since added", "Total licenses", "Used", "Assigned", "Available", "Weekly assignment change"}},
		len(ra), func(i int) []string {
			r := ra[i]
			return []string{r.CustomerName, r.SubscriptionID, fmt.Sprint(r.DaysSinceAdded), fmt.Sprint(r.TotalLicenses), fmt.Sprint(r.Used), fmt.Sprint(r.Assigned), fmt.Sprint(r.Available), intText(r.WeeklyAssignmentChange)}
		})
	for _, which := range []struct{ table, title, days string }{{"expiring", "Expiring within 90 days", "Days to expiry"}, {"renewing", "Renewing within 90 days", "Days to renewal"}} {
		rows, err := readPartner[model.Expiring](ctx, store, jobs.AnalyticsKey(which.table, region, week), partner, func(r model.Expiring) string { return r.PartnerID })
		if err != nil {
			return nil, err
		}
		kp := []kpi{{"Customers", fmt.Sprint(k.ExpiringCustomers)}, {"Assignment", pctText(k.ExpiringAssignmentPct)}, {"Usage", pctText(k.ExpiringUsagePct)}}
		if which.table == "renewing" {
			kp = []kpi{{"Customers", fmt.Sprint(k.RenewingCustomers)}, {"Assignment", pctText(k.RenewingAssignmentPct)}, {"Usage", pctText(k.RenewingUsagePct)}}
		}
		add(table{Title: which.title, KPIs: kp, Headers: []string{"Customer", "Subscription ID", which.days, "Total licenses", "Used", "Assigned", "Available"}},
			len(rows), func(i int) []string {
				r := rows[i]
				return []string{r.CustomerName, r.SubscriptionID, fmt.Sprint(r.DaysTo), fmt.Sprint(r.TotalLicenses), fmt.Sprint(r.Used), fmt.Sprint(r.Assigned), fmt.Sprint(r.Available)}
			})
	}
	low, err := readPartner[model.LowAssignment](ctx, store, jobs.AnalyticsKey("low_assignment", region, week), partner, func(r model.LowAssignment) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{Title: "Low license assignment", KPIs: []kpi{{"Customers", fmt.Sprint(k.LowAssignment)}, {"Assignment", pctText(k.LowAssignmentPct)},
		{"Usage when assigned", pctText(k.LowAssignmentUsageWhenAssigned)}, {"Unassigned licenses", fmt.Sprint(k.LowAssignmentUnassigned)}},
		Headers: []string{"Customer", "Subscription ID", "Months since added", "Assigned", "Assigned %", "Total licenses", "Used", "Available"}},
		len(low), func(i int) []string {
			r := low[i]
			return []string{r.CustomerName, r.SubscriptionID, fmt.Sprint(r.MonthsSinceAdded), fmt.Sprint(r.Assigned), pctText(r.AssignedPct), fmt.Sprint(r.TotalLicenses), fmt.Sprint(r.Used), fmt.Sprint(r.Available)}
		})
	over, err := readPartner[model.Overage](ctx, store, jobs.AnalyticsKey("overage", region, week), partner, func(r model.Overage) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	avg := "–"
	if k.OverageAvgPerCustomer != nil {
		avg = chart.Format(*k.OverageAvgPerCustomer)
	}
	add(table{Title: "License overage", KPIs: []kpi{{"Customers with overage", fmt.Sprint(k.OverageCustomers)}, {"Licenses in overage", fmt.Sprint(k.OverageLicenses)}, {"Average per customer", avg}},
		Headers: []string{"Customer", "Subscription ID", "Months remaining", "Auto-renew", "Total licenses", "Assigned", "Used", "Overage"}},
		len(over), func(i int) []string {
			r := over[i]
			return []string{r.CustomerName, r.SubscriptionID, fmt.Sprint(r.MonthsRemaining), yesNo(r.AutoRenew), fmt.Sprint(r.TotalLicenses), fmt.Sprint(r.Assigned), fmt.Sprint(r.Used), fmt.Sprint(r.Overage)}
		})
	usage, err := readPartner[model.CallingUsage](ctx, store, jobs.AnalyticsKey("calling_usage", region, week), partner, func(r model.CallingUsage) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{Title: "Calling usage by customer", KPIs: []kpi{{"Calling users", fmt.Sprint(k.CallingUsers)}},
		Headers: []string{"Customer", "Org ID", "Calling users", "Calls", "Legs", "Minutes", "Video minutes"}},
		len(usage), func(i int) []string {
			r := usage[i]
			return []string{r.CustomerName, r.CustomerID, fmt.Sprint(r.CallingUsers), fmt.Sprint(r.Calls), fmt.Sprint(r.Legs), fmt.Sprint(r.Minutes), fmt.Sprint(r.VideoMinutes)}
		})
	users, err := readPartner[model.CallingUser](ctx, store, jobs.AnalyticsKey("calling_users", region, week), partner, func(r model.CallingUser) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	sort.SliceStable(users, func(i, j int) bool { return users[i].Calls > users[j].Calls })
	add(table{Title: "Calling users by volume", Headers: []string{"Org ID", "User ID", "Calls", "Legs", "Minutes", "Rank in customer"}},
		len(users), func(i int) []string {
			r := users[i]
			return []string{r.CustomerID, r.UserID, fmt.Sprint(r.Calls), fmt.Sprint(r.Legs), fmt.Sprint(r.Minutes), fmt.Sprint(r.RankInCustomer)}
		})
	quality, err := readPartner[model.CallQuality](ctx, store, jobs.AnalyticsKey("call_quality", region, week), partner, func(r model.CallQuality) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{Title: "Call quality by customer and endpoint type", Headers: []string{"Org ID", "Endpoint type", "Legs", "Poor legs", "Poor %"}},
		len(quality), func(i int) []string {
			r := quality[i]
			return []string{r.CustomerID, r.EndpointType, fmt.Sprint(r.Legs), fmt.Sprint(r.PoorLegs), pctText(r.PoorPct)}
		})
	queues, err := readPartner[model.CallQueues](ctx, store, jobs.AnalyticsKey("call_queues", region, week), partner, func(r model.CallQueues) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{Title: "Call queues by customer", Headers: []string{"Org ID", "Calls", "Answered", "Abandoned", "Timed out", "Avg answer time", "Avg wait before abandon", "Abandon rate"}},
		len(queues), func(i int) []string {
			r := queues[i]
			return []string{r.CustomerID, fmt.Sprint(r.Calls), fmt.Sprint(r.Answered), fmt.Sprint(r.Abandoned), fmt.Sprint(r.TimedOut), secondsText(r.AvgAnswerSeconds), secondsText(r.AvgAbandonWaitSeconds), pctText(r.AbandonRate)}
		})
	statuses, err := readPartner[model.CustomerStatus](ctx, store, jobs.AnalyticsKey("customer_status", region, week), partner, func(r model.CustomerStatus) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	subStatus, err := readPartner[model.SubscriptionStatus](ctx, store, jobs.AnalyticsKey("subscription_status", region, week), partner, func(r model.SubscriptionStatus) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{Title: "Customer and subscription statuses", KPIs: append(countBy(statuses, func(r model.CustomerStatus) string { return r.Status }),
		countBy(subStatus, func(r model.SubscriptionStatus) string { return r.Status })...),
		Headers: []string{"Org ID", "Subscription ID", "Product", "Status", "Provisioning", "Ends", "Total licenses", "Assigned", "Used (7 days)"}},
		len(subStatus), func(i int) []string {
			r := subStatus[i]
			return []string{r.CustomerID, r.SubscriptionID, r.Product, r.Status, r.ProvisioningStatus, r.EndDate.String(), fmt.Sprint(r.LicensesTotal), fmt.Sprint(r.LicensesAssigned), fmt.Sprint(r.LicensesUsed7d)}
		})
	return out, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// readPartner reads a table's rows of one partner.
func readPartner[T any](ctx context.Context, store storage.Store, key, partner string, of func(T) string) ([]T, error) {
	rows, err := jobs.ReadTable[T](ctx, store, key)
	if err != nil {
		return nil, err
	}
	out := rows[:0]
	for _, r := range rows {
		if of(r) == partner {
			out = append(out, r)
		}
	}
	return out, nil
}

// countBy counts rows by a label, as KPIs in label order.
func countBy[T any](rows []T, label func(T) string) []kpi {
	n := map[string]int{}
	for _, r := range rows {
		n[label(r)]++
	}
	labels := make([]string, 0, len(n))
	for l := range n {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	out := make([]kpi, len(labels))
	for i, l := range labels {
		out[i] = kpi{Label: l, Value: fmt.Sprint(n[l])}
	}
	return out
}
