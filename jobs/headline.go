package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"tally/chart"
	"tally/mail"
	"tally/model"
	"tally/periods"
	"tally/report"
	"tally/storage"
)

// headlineTemplates are the templates whose emails carry the partner's week
// at a glance (SPEC §7 KPIs, table counts, top overage, the 8-week trend).
var headlineTemplates = map[string]bool{report.CustomerSubscriptions.Name: true, report.FlexLicenseUsage.Name: true}

// ChartCID is the Content-ID of the trend chart in a report email.
const ChartCID = "trend-chart@tally"

// Headline reads partner's latest published week of analytics ending by the
// end of p, in regions: nil (and no error) when no such week is published.
func Headline(ctx context.Context, stores storage.Regional, regions []string, partner string, p periods.Period) (*mail.Headline, []mail.Inline, error) {
	week := periods.Latest(periods.Weekly, p.End())
	if p.Cadence == periods.Weekly {
		week = p
	}
	h := &mail.Headline{Week: week.ID(),
		KPIs: []string{"Customers", "Expiring (90 d)", "Renewing (90 d)", "Low assignment", "Over limit", "Calling users"}}
	var trends []*Trends
	counts := map[string]int64{}
	type over struct {
		row []string
		n   int64
	}
	var overs []over
	for _, region := range regions {
		store, err := stores.For(region)
		if err != nil {
			return nil, nil, err
		}
		t, err := LoadTrends(ctx, store, region, partner, week, 8)
		if errors.Is(err, ErrNoAnalytics) || err == nil && t.KPIs == nil {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		trends = append(trends, t)
		k := t.KPIs
		h.KPIRows = append(h.KPIRows, []string{region, fmt.Sprint(k.TotalCustomers), fmt.Sprint(k.ApproachingExpiration), fmt.Sprint(k.ApproachingRenewal),
			fmt.Sprint(k.LowAssignment), fmt.Sprint(k.OverLicenseLimit), fmt.Sprint(k.CallingUsers)})
		counts["Recently added customers (90 days)"] += k.RecentlyAddedCustomers
		counts["Customers expiring within 90 days"] += k.ExpiringCustomers
		counts["Customers renewing within 90 days"] += k.RenewingCustomers
		counts["Customers with low license assignment"] += k.LowAssignment
		counts["Customers over their license limit"] += k.OverageCustomers
		counts["Licenses in overage"] += k.OverageLicenses
		rows, err := ReadTable[model.Overage](ctx, store, AnalyticsKey("overage", region, week))
		if err != nil {
			return nil, nil, err
		}
		for _, o := range rows {
			if o.PartnerID == partner && o.Overage > 0 {
				overs = append(overs, over{[]string{o.CustomerName, o.SubscriptionID, region, fmt.Sprint(o.Overage)}, o.Overage})
			}
		}
	}
	if len(trends) == 0 {
		return nil, nil, nil
	}
	labels := make([]string, 0, len(counts))
	for l := range counts {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		h.Counts = append(h.Counts, mail.KV{Label: l, Value: fmt.Sprint(counts[l])})
	}
	sort.SliceStable(overs, func(i, j int) bool {
		if overs[i].n != overs[j].n {
			return overs[i].n > overs[j].n
		}
		return overs[i].row[0] < overs[j].row[0]
	})
	for i := 0; i < len(overs) && i < 5; i++ {
		h.TopOver = append(h.TopOver, overs[i].row)
	}

	// The trend: assigned and used licenses (% of total) per region, 8 weeks.
	c := &chart.Chart{ID: "trend", Title: "License assignment and usage, 8 weeks (" + partner + ")", XLabel: "Week (starting Sunday, UTC)",
		YLabel: "Licenses (% of total)", Unit: "%", Percent: true, Labels: trends[0].Weeks}
	h.Trend = []string{"Week"}
	// A colour per region; assigned solid, used dashed (8 series, 6 colours).
	for i, t := range trends {
		colour := i
		c.Series = append(c.Series, chart.Series{Name: t.Region + " assigned", Values: t.AssignedPct, Colour: &colour},
			chart.Series{Name: t.Region + " used", Values: t.UsedPct, Colour: &colour, Dashed: true})
		h.Trend = append(h.Trend, t.Region+" assigned %", t.Region+" used %")
	}
	for i, w := range c.Labels {
		row := []string{w}
		for _, s := range c.Series {
			row = append(row, pointText(s.Values[i]))
		}
		h.TrendRows = append(h.TrendRows, row)
	}
	png, err := c.PNG()
	if err != nil {
		return nil, nil, err
	}
	h.ChartCID, h.ChartAlt, h.ChartWidth, h.ChartHeight = ChartCID, c.Alt(), chart.EmailWidth, chart.EmailHeight
	return h, []mail.Inline{{CID: ChartCID, Name: "trend.png", ContentType: "image/png", Data: png}}, nil
}

// pointText is a chart value as the email's tables show it: "–" for a gap.
func pointText(v *float64) string {
	if v == nil {
		return "–"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}
