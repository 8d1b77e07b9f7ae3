package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"tally/chart"
	"tally/model"
	"tally/periods"
	"tally/storage"
)

// Trends are one partner's weekly figures in one region over the weeks up to
// a week (oldest first), read from the published analytics tables; a week not
// published is nil, shown as a gap.
type Trends struct {
	Partner, Region string
	Weeks           []string
	// Published marks the weeks with analytics.
	Published []bool
	// AssignedPct and UsedPct are Σ assigned (used in the last 7 days) ÷ Σ
	// total licenses of the partner's active and trial subscriptions, in %.
	AssignedPct, UsedPct []*float64
	CallingUsers         []*float64
	PoorPct              []*float64 // poor call legs ÷ legs, in %
	QueueAnswerSeconds   []*float64 // answered-weighted average answer time
	QueueAbandonPct      []*float64 // abandoned ÷ queued calls, in %
	// Endpoint types and their poor % in the last week.
	Endpoints      []string
	EndpointPoorPc []*float64
	// KPIs of the last week (nil when it is not published).
	KPIs *model.KPIs
}

// ErrNoAnalytics is a region with no published week in the range.
var ErrNoAnalytics = errors.New("no analytics published")

// LoadTrends reads weeks weeks of analytics up to last for partner in region.
func LoadTrends(ctx context.Context, store storage.Store, region, partner string, last periods.Period, weeks int) (*Trends, error) {
	t := &Trends{Partner: partner, Region: region}
	first := last
	for i := 1; i < weeks; i++ {
		first = first.Prev()
	}
	published := 0
	for w := first; !w.Start.After(last.Start); w = w.Next() {
		t.Weeks = append(t.Weeks, w.ID())
		kpis, err := readAll[model.KPIs](ctx, store, AnalyticsKey("kpis", region, w))
		if errors.Is(err, storage.ErrNotFound) {
			t.Published = append(t.Published, false)
			for _, s := range []*[]*float64{&t.AssignedPct, &t.UsedPct, &t.CallingUsers, &t.PoorPct, &t.QueueAnswerSeconds, &t.QueueAbandonPct} {
				*s = append(*s, nil)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		published++
		t.Published = append(t.Published, true)
		var k *model.KPIs
		for i := range kpis {
			if kpis[i].PartnerID == partner {
				k = &kpis[i]
			}
		}
		if w.Start.Equal(last.Start) {
			t.KPIs = k
		}
		users := 0.0
		if k != nil {
			users = float64(k.CallingUsers)
		}
		t.CallingUsers = append(t.CallingUsers, &users)

		subs, err := readAll[model.SubscriptionStatus](ctx, store, AnalyticsKey("subscription_status", region, w))
		if err != nil {
			return nil, fmt.Errorf("analytics of %s in %s: %w", w.ID(), region, err)
		}
		var total, assigned, used int64
		for _, s := range subs {
			if s.PartnerID != partner || s.Status == "Cancelled" || s.Status == "Suspended" || s.Status == "Trial expired" {
				continue
			}
			total, assigned, used = total+s.LicensesTotal, assigned+s.LicensesAssigned, used+s.LicensesUsed7d
		}
		t.AssignedPct = append(t.AssignedPct, percentOf(assigned, total))
		t.UsedPct = append(t.UsedPct, percentOf(used, total))

		quality, err := readAll[model.CallQuality](ctx, store, AnalyticsKey("call_quality", region, w))
		if err != nil {
			return nil, fmt.Errorf("analytics of %s in %s: %w", w.ID(), region, err)
		}
		var legs, poor int64
		byType := map[string][2]int64{}
		for _, q := range quality {
			if q.PartnerID != partner {
				continue
			}
			legs, poor = legs+q.Legs, poor+q.PoorLegs
			bt := byType[q.EndpointType]
			byType[q.EndpointType] = [2]int64{bt[0] + q.PoorLegs, bt[1] + q.Legs}
		}
		t.PoorPct = append(t.PoorPct, percentOf(poor, legs))
		if w.Start.Equal(last.Start) {
			for typ := range byType {
				t.Endpoints = append(t.Endpoints, typ)
			}
			slices.Sort(t.Endpoints)
			for _, typ := range t.Endpoints {
				t.EndpointPoorPc = append(t.EndpointPoorPc, percentOf(byType[typ][0], byType[typ][1]))
			}
		}

		queues, err := readAll[model.CallQueues](ctx, store, AnalyticsKey("call_queues", region, w))
		if err != nil {
			return nil, fmt.Errorf("analytics of %s in %s: %w", w.ID(), region, err)
		}
		var calls, answered, abandoned int64
		var answerSum float64
		for _, q := range queues {
			if q.PartnerID != partner {
				continue
			}
			calls, answered, abandoned = calls+q.Calls, answered+q.Answered, abandoned+q.Abandoned
			if q.AvgAnswerSeconds != nil {
				answerSum += *q.AvgAnswerSeconds * float64(q.Answered)
			}
		}
		if answered > 0 {
			t.QueueAnswerSeconds = append(t.QueueAnswerSeconds, chart.F(answerSum/float64(answered)))
		} else {
			t.QueueAnswerSeconds = append(t.QueueAnswerSeconds, nil)
		}
		t.QueueAbandonPct = append(t.QueueAbandonPct, percentOf(abandoned, calls))
	}
	if published == 0 {
		return t, fmt.Errorf("%w for partner %s in region %s from %s to %s", ErrNoAnalytics, partner, region, first.ID(), last.ID())
	}
	return t, nil
}

func percentOf(n, d int64) *float64 {
	if d == 0 {
		return nil
	}
	return chart.F(float64(n) / float64(d) * 100)
}

// Charts are the trends as the console and the emails draw them; id prefixes
// the charts' element ids.
func (t *Trends) Charts(id string) []*chart.Chart {
	weeks := "Week (starting Sunday, UTC)"
	return []*chart.Chart{
		{ID: id + "-licenses", Title: "License assignment and usage", XLabel: weeks, YLabel: "Licenses (% of total)", Unit: "%", Percent: true,
			Labels: t.Weeks, Series: []chart.Series{{Name: "Assigned", Values: t.AssignedPct}, {Name: "Used in the last 7 days", Values: t.UsedPct}}},
		{ID: id + "-calling-users", Title: "Calling users", XLabel: weeks, YLabel: "Users with calls", Unit: " users",
			Labels: t.Weeks, Series: []chart.Series{{Name: "Calling users", Values: t.CallingUsers}}},
		{ID: id + "-quality", Title: "Call quality: poor call legs", XLabel: weeks, YLabel: "Poor legs (% of legs)", Unit: "%",
			Labels: t.Weeks, Series: []chart.Series{{Name: "Poor legs", Values: t.PoorPct}}},
		{ID: id + "-quality-by-endpoint", Title: "Poor call legs by endpoint type, last week", XLabel: "Endpoint type", YLabel: "Poor legs (% of legs)", Unit: "%", Bars: true,
			Labels: t.Endpoints, Series: []chart.Series{{Name: "Poor legs", Values: t.EndpointPoorPc}}},
		{ID: id + "-queue-answer", Title: "Call queues: average answer time", XLabel: weeks, YLabel: "Answer time (seconds)", Unit: " s",
			Labels: t.Weeks, Series: []chart.Series{{Name: "Average answer time", Values: t.QueueAnswerSeconds}}},
		{ID: id + "-queue-abandon", Title: "Call queues: abandon rate", XLabel: weeks, YLabel: "Abandoned calls (% of queued)", Unit: "%",
			Labels: t.Weeks, Series: []chart.Series{{Name: "Abandon rate", Values: t.QueueAbandonPct}}},
	}
}
