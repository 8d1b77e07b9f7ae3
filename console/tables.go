package console

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"tally/jobs"
	"tally/model"
	"tally/periods"
	"tally/storage"
)

// numberRE is a cell right-aligned as a number.
var numberRE = regexp.MustCompile(`^(–|-?[0-9]+(\.[0-9]+)?( s|%)?)$`)

// table is an analytics table as the page shows it: its first maxRows rows,
// and a caption counting all of them.
type table struct {
	ID      string // the anchor the KPI cards link to (the §7 table name)
	Title   string
	KPIs    []kpi
	Headers []string
	Numeric []bool
	Rows    [][]tcell
	Total   int    // rows in the table
	Caption string // what the rows are: "5 subscriptions of 4 customers"
	Order   string // how the shown rows are chosen, when there are more
	Report  bool   // the Customer Subscriptions report holds every row
}

// tcell is a table cell: a name, with the id it stands for as its tooltip.
type tcell struct{ Text, Title string }

type kpi struct{ Label, Value, Href string }

// maxRows is how many rows of a table the page shows (the run's files have all).
const maxRows = 25

// Values as every table shows them: one percent format, one seconds format.
func pctText(p *float64) string {
	if p == nil {
		return "–"
	}
	return strconv.FormatFloat(*p*100, 'f', 1, 64) + "%"
}

func secondsText(p *float64) string {
	if p == nil {
		return "–"
	}
	return strconv.FormatFloat(*p, 'f', 1, 64) + " s"
}

func intText(p *int64) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprint(*p)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// plain are cells without tooltips.
func plain(texts ...string) []tcell {
	out := make([]tcell, len(texts))
	for i, t := range texts {
		out[i] = tcell{Text: t}
	}
	return out
}

// directory names the ids a partner's tables hold, from the inventory of the
// week's Saturday (the snapshot its analytics read).
type directory struct {
	customers map[string]string // org id → name
	users     map[string]string // user id → email
}

// customer is a customer's cell: its name (the row's, else the inventory's),
// its org id as the tooltip.
func (d *directory) customer(id, name string) tcell {
	if name == "" {
		name = d.customers[id]
	}
	if name == "" {
		name = "(not in the inventory)"
	}
	return tcell{Text: name, Title: "Org ID " + id}
}

func (d *directory) user(id string) tcell {
	name := d.users[id]
	if name == "" {
		name = "(not in the inventory)"
	}
	return tcell{Text: name, Title: "User ID " + id}
}

// names reads the partner's customers' names, and the emails of users, from
// the region's inventory of day (a day without one leaves them unnamed).
func names(ctx context.Context, store storage.Store, region, partner string, day periods.Period, users map[string]bool) (*directory, error) {
	d := &directory{customers: map[string]string{}, users: map[string]string{}}
	err := jobs.EachRow(ctx, store, jobs.InventoryKey("customers", region, day), func(c *model.Customer) {
		if c.PartnerID == partner {
			d.customers[c.CustomerID] = c.CustomerName
		}
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if len(users) == 0 {
		return d, nil
	}
	err = jobs.EachRow(ctx, store, jobs.InventoryKey("users", region, day), func(u *model.User) {
		if users[u.UserID] {
			d.users[u.UserID] = u.Email
		}
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	return d, nil
}

// caption counts a table's rows and the customers among them.
// unit is "subscription|subscriptions": singular and plural.
func caption(rows int, unit string, customers map[string]bool) string {
	s := plural(rows, unit)
	if !strings.HasPrefix(unit, "customer|") {
		s += " of " + plural(len(customers), "customer|customers")
	}
	return s
}

func plural(n int, unit string) string {
	one, many, _ := strings.Cut(unit, "|")
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// analyticsTables reads the week's §7 tables of one partner in one region;
// k is the partner's KPIs of that week (LoadTrends read them). A KPI shown on
// the page's cards is not repeated above its table; the table's caption
// counts the rows the card summarises.
func analyticsTables(ctx context.Context, store storage.Store, region, partner string, week periods.Period, k *model.KPIs) ([]table, error) {
	var out []table
	if k == nil {
		return nil, nil
	}
	add := func(t table, rows int, customerOf func(i int) string, unit string, each func(i int) []tcell) {
		t.Total = rows
		customers := map[string]bool{}
		for i := 0; i < rows; i++ {
			customers[customerOf(i)] = true
		}
		t.Caption = caption(rows, unit, customers)
		for i := 0; i < rows && i < maxRows; i++ {
			t.Rows = append(t.Rows, each(i))
		}
		t.Numeric = make([]bool, len(t.Headers)) // right-aligned: every shown value is a number
		for i := range t.Headers {
			t.Numeric[i] = len(t.Rows) > 0
			for _, row := range t.Rows {
				if !numberRE.MatchString(row[i].Text) {
					t.Numeric[i] = false
				}
			}
		}
		out = append(out, t)
	}
	key := func(name string) string { return jobs.AnalyticsKey(name, region, week) }

	// The calling users shown (most calls first) are the only ones named.
	users, err := readPartner[model.CallingUser](ctx, store, key("calling_users"), partner, func(r model.CallingUser) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	sort.SliceStable(users, func(i, j int) bool { return users[i].Calls > users[j].Calls })
	shown := map[string]bool{}
	for i := 0; i < len(users) && i < maxRows; i++ {
		shown[users[i].UserID] = true
	}
	dir, err := names(ctx, store, region, partner, week.LastDay(), shown)
	if err != nil {
		return nil, err
	}

	ra, err := readPartner[model.RecentlyAdded](ctx, store, key("recently_added"), partner, func(r model.RecentlyAdded) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{ID: "recently_added", Title: "Recently added (last 90 days)", Report: true,
		KPIs:    []kpi{{"New customers", fmt.Sprint(k.RecentlyAddedCustomers), ""}, {"Total licenses", fmt.Sprint(k.RecentlyAddedLicenses), ""}},
		Headers: []string{"Customer", "Subscription ID", "Days since added", "Total licenses", "Used", "Assigned", "Available", "Weekly assignment change", "Weekly usage change"}},
		len(ra), func(i int) string { return ra[i].CustomerID }, "subscription|subscriptions", func(i int) []tcell {
			r := ra[i]
			return append([]tcell{dir.customer(r.CustomerID, r.CustomerName)}, plain(r.SubscriptionID, fmt.Sprint(r.DaysSinceAdded), fmt.Sprint(r.TotalLicenses),
				fmt.Sprint(r.Used), fmt.Sprint(r.Assigned), fmt.Sprint(r.Available), intText(r.WeeklyAssignmentChange), intText(r.WeeklyUsageChange))...)
		})
	for _, which := range []struct{ table, title, days string }{{"expiring", "Expiring within 90 days", "Days to expiry"}, {"renewing", "Renewing within 90 days", "Days to renewal"}} {
		rows, err := readPartner[model.Expiring](ctx, store, key(which.table), partner, func(r model.Expiring) string { return r.PartnerID })
		if err != nil {
			return nil, err
		}
		kp := []kpi{{"Assignment", pctText(k.ExpiringAssignmentPct), ""}, {"Usage", pctText(k.ExpiringUsagePct), ""}}
		if which.table == "renewing" {
			kp = []kpi{{"Assignment", pctText(k.RenewingAssignmentPct), ""}, {"Usage", pctText(k.RenewingUsagePct), ""}}
		}
		add(table{ID: which.table, Title: which.title, KPIs: kp, Report: true,
			Headers: []string{"Customer", "Subscription ID", which.days, "Total licenses", "Used", "Assigned", "Available", "Usage, last 3 months"}},
			len(rows), func(i int) string { return rows[i].CustomerID }, "subscription|subscriptions", func(i int) []tcell {
				r := rows[i]
				return append([]tcell{dir.customer(r.CustomerID, r.CustomerName)}, plain(r.SubscriptionID, fmt.Sprint(r.DaysTo), fmt.Sprint(r.TotalLicenses),
					fmt.Sprint(r.Used), fmt.Sprint(r.Assigned), fmt.Sprint(r.Available), usageRange(r.Usage3Months))...)
			})
	}
	low, err := readPartner[model.LowAssignment](ctx, store, key("low_assignment"), partner, func(r model.LowAssignment) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{ID: "low_assignment", Title: "Low license assignment", Report: true, KPIs: []kpi{{"Assignment", pctText(k.LowAssignmentPct), ""},
		{"Usage when assigned", pctText(k.LowAssignmentUsageWhenAssigned), ""}, {"Unassigned licenses", fmt.Sprint(k.LowAssignmentUnassigned), ""}},
		Headers: []string{"Customer", "Subscription ID", "Months since added", "Assigned", "Assigned %", "Total licenses", "Used", "Available", "Weekly assignment change"}},
		len(low), func(i int) string { return low[i].CustomerID }, "subscription|subscriptions", func(i int) []tcell {
			r := low[i]
			return append([]tcell{dir.customer(r.CustomerID, r.CustomerName)}, plain(r.SubscriptionID, fmt.Sprint(r.MonthsSinceAdded), fmt.Sprint(r.Assigned),
				pctText(r.AssignedPct), fmt.Sprint(r.TotalLicenses), fmt.Sprint(r.Used), fmt.Sprint(r.Available), intText(r.WeeklyAssignmentChange))...)
		})
	over, err := overageRows(ctx, store, region, partner, week)
	if err != nil {
		return nil, err
	}
	avg := "–"
	if k.OverageAvgPerCustomer != nil {
		avg = strconv.FormatFloat(*k.OverageAvgPerCustomer, 'f', 1, 64)
	}
	add(table{ID: "overage", Title: "License overage", Report: true, KPIs: []kpi{{"Licenses in overage", fmt.Sprint(k.OverageLicenses), ""}, {"Average per customer", avg, ""}},
		Headers: []string{"Customer", "Subscription ID", "Months remaining", "Auto-renew", "Total licenses", "Assigned", "Assigned %", "Used", "Used %",
			"License type", "Entitled", "Consumed", "Overage"}},
		len(over), func(i int) string { return over[i].CustomerID }, "license type in overage|license types in overage", func(i int) []tcell {
			r := over[i]
			return append([]tcell{dir.customer(r.CustomerID, r.CustomerName)}, plain(r.SubscriptionID, fmt.Sprint(r.MonthsRemaining), yesNo(r.AutoRenew),
				fmt.Sprint(r.TotalLicenses), fmt.Sprint(r.Assigned), pctText(r.AssignedPct), fmt.Sprint(r.Used), pctText(r.UsedPct),
				r.licenseType, r.entitled, r.consumed, fmt.Sprint(r.licenses))...)
		})
	usage, err := readPartner[model.CallingUsage](ctx, store, key("calling_usage"), partner, func(r model.CallingUsage) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{ID: "calling_usage", Title: "Calling usage by customer", Headers: []string{"Customer", "Calling users", "Calls", "Legs", "Minutes", "Video minutes"}},
		len(usage), func(i int) string { return usage[i].CustomerID }, "customer|customers", func(i int) []tcell {
			r := usage[i]
			return append([]tcell{dir.customer(r.CustomerID, r.CustomerName)}, plain(fmt.Sprint(r.CallingUsers), fmt.Sprint(r.Calls), fmt.Sprint(r.Legs), fmt.Sprint(r.Minutes), fmt.Sprint(r.VideoMinutes))...)
		})
	add(table{ID: "calling_users", Title: "Calling users by volume", Order: "the most calls first",
		Headers: []string{"User", "Customer", "Calls", "Legs", "Minutes", "Rank in customer"}},
		len(users), func(i int) string { return users[i].CustomerID }, "user|users", func(i int) []tcell {
			r := users[i]
			return append([]tcell{dir.user(r.UserID), dir.customer(r.CustomerID, "")}, plain(fmt.Sprint(r.Calls), fmt.Sprint(r.Legs), fmt.Sprint(r.Minutes), fmt.Sprint(r.RankInCustomer))...)
		})
	quality, err := readPartner[model.CallQuality](ctx, store, key("call_quality"), partner, func(r model.CallQuality) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{ID: "call_quality", Title: "Call quality by customer and endpoint type", Headers: []string{"Customer", "Endpoint type", "Legs", "Poor legs", "Poor %"}},
		len(quality), func(i int) string { return quality[i].CustomerID }, "customer endpoint type|customer endpoint types", func(i int) []tcell {
			r := quality[i]
			return append([]tcell{dir.customer(r.CustomerID, "")}, plain(r.EndpointType, fmt.Sprint(r.Legs), fmt.Sprint(r.PoorLegs), pctText(r.PoorPct))...)
		})
	queues, err := readPartner[model.CallQueues](ctx, store, key("call_queues"), partner, func(r model.CallQueues) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{ID: "call_queues", Title: "Call queues by customer", Headers: []string{"Customer", "Calls", "Answered", "Abandoned", "Timed out", "Avg answer time", "Avg wait before abandon", "Abandon rate"}},
		len(queues), func(i int) string { return queues[i].CustomerID }, "customer|customers", func(i int) []tcell {
			r := queues[i]
			return append([]tcell{dir.customer(r.CustomerID, "")}, plain(fmt.Sprint(r.Calls), fmt.Sprint(r.Answered), fmt.Sprint(r.Abandoned), fmt.Sprint(r.TimedOut),
				secondsText(r.AvgAnswerSeconds), secondsText(r.AvgAbandonWaitSeconds), pctText(r.AbandonRate))...)
		})
	// Statuses: a customer's (several may hold) and each subscription's, apart.
	statuses, err := readPartner[model.CustomerStatus](ctx, store, key("customer_status"), partner, func(r model.CustomerStatus) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	type held struct {
		id, name string
		statuses []string
	}
	var byCustomer []*held
	index := map[string]*held{}
	for _, s := range statuses {
		h := index[s.CustomerID]
		if h == nil {
			h = &held{id: s.CustomerID, name: s.CustomerName}
			index[s.CustomerID] = h
			byCustomer = append(byCustomer, h)
		}
		h.statuses = append(h.statuses, s.Status)
	}
	add(table{ID: "customer_status", Title: "Customer statuses", KPIs: countBy(statuses, func(r model.CustomerStatus) string { return r.Status }),
		Headers: []string{"Customer", "Statuses"}},
		len(byCustomer), func(i int) string { return byCustomer[i].id }, "customer|customers", func(i int) []tcell {
			h := byCustomer[i]
			return []tcell{dir.customer(h.id, h.name), {Text: strings.Join(h.statuses, ", ")}}
		})
	subStatus, err := readPartner[model.SubscriptionStatus](ctx, store, key("subscription_status"), partner, func(r model.SubscriptionStatus) string { return r.PartnerID })
	if err != nil {
		return nil, err
	}
	add(table{ID: "subscription_status", Title: "Subscription statuses", KPIs: countBy(subStatus, func(r model.SubscriptionStatus) string { return r.Status }),
		Headers: []string{"Customer", "Subscription ID", "Product", "Status", "Provisioning", "Ends", "Total licenses", "Assigned", "Used (7 days)"}},
		len(subStatus), func(i int) string { return subStatus[i].CustomerID }, "subscription|subscriptions", func(i int) []tcell {
			r := subStatus[i]
			return append([]tcell{dir.customer(r.CustomerID, "")}, plain(r.SubscriptionID, r.Product, r.Status, r.ProvisioningStatus, r.EndDate.String(),
				fmt.Sprint(r.LicensesTotal), fmt.Sprint(r.LicensesAssigned), fmt.Sprint(r.LicensesUsed7d))...)
		})
	return out, nil
}

// usageRange is a 3-month usage trend as its lowest and highest week.
func usageRange(weeks []*float64) string {
	var lo, hi *float64
	for _, v := range weeks {
		if v == nil {
			continue
		}
		if lo == nil || *v < *lo {
			lo = v
		}
		if hi == nil || *v > *hi {
			hi = v
		}
	}
	if lo == nil {
		return "–"
	}
	if *lo == *hi {
		return pctText(lo)
	}
	return pctText(lo) + " – " + pctText(hi)
}

// overage is a subscription in overage, one license type of it: SPEC §7's
// columns, and the entitled and consumed licenses its overage comes from.
type overage struct {
	model.Overage
	licenseType, entitled, consumed string
	licenses                        int64 // in overage: consumed − entitled of the type
}

// overageRows are the week's overage subscriptions of the partner, one row
// per license type consumed beyond its entitlement (usage/subscription of the
// week's Saturday, which the analytics run read): a row's overage is consumed
// − entitled, and a subscription's rows add up to its overage.
func overageRows(ctx context.Context, store storage.Store, region, partner string, week periods.Period) ([]overage, error) {
	subs, err := readPartner[model.Overage](ctx, store, jobs.AnalyticsKey("overage", region, week), partner, func(r model.Overage) string { return r.PartnerID })
	if err != nil || len(subs) == 0 {
		return nil, err
	}
	over := map[string][]model.SubscriptionUsage{} // customer/subscriber → license types in overage
	err = jobs.EachRow(ctx, store, jobs.UsageKey("subscription", region, week.LastDay()), func(u *model.SubscriptionUsage) {
		if u.PartnerID == partner && u.Consumed > u.Entitled {
			k := u.CustomerID + "/" + u.SubscriberID
			over[k] = append(over[k], *u)
		}
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	var out []overage
	for _, s := range subs {
		types := over[s.CustomerID+"/"+s.SubscriberID]
		sort.Slice(types, func(i, j int) bool { return types[i].LicenseType < types[j].LicenseType })
		if len(types) == 0 { // the usage of that day is gone: the subscription's total only
			out = append(out, overage{Overage: s, licenseType: "–", entitled: "–", consumed: "–", licenses: s.Overage})
			continue
		}
		for _, u := range types {
			out = append(out, overage{Overage: s, licenseType: u.LicenseType, entitled: fmt.Sprint(u.Entitled), consumed: fmt.Sprint(u.Consumed),
				licenses: u.Consumed - u.Entitled})
		}
	}
	return out, nil
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
