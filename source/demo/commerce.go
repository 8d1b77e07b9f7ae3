package demo

import (
	"fmt"
	"math"
	"time"

	"tally/model"
	"tally/periods"
)

var provisioningOther = []string{"Provisioning failed", "Awaiting provisioning details", "Manual provisioning (partner)", "Manual provisioning (Cisco)", "Provisioning"}

var services = map[string][]string{
	"calling":            {"calling", "voicemail"},
	"dedicated-instance": {"dedicated-instance", "calling"},
	"ucm-cloud":          {"ucm-cloud"},
	"meetings":           {"meetings", "webinars"},
	"messaging":          {"messaging"},
}

// sub describes one subscription's day-independent shape.
type sub struct {
	key        string
	product    string
	trial      bool
	created    time.Time
	months     int // term length
	autoRenew  bool
	renewSeed  uint64 // decides, term by term, whether a non-auto-renewing one is renewed by hand
	assignRate float64
	useRate    float64
}

func dateOf(t time.Time) time.Time { return periods.Day(t).Start }

// term returns the subscription's current term on day: auto-renewing ones roll
// over; others are renewed by hand at 80% of term ends, and otherwise end.
func (s *sub) term(day periods.Period) (start, end time.Time) {
	start = dateOf(s.created)
	end = start.AddDate(0, s.months, 0)
	for k := uint64(1); end.Before(day.End()); k++ {
		if !s.autoRenew && (s.trial || mix(s.renewSeed+k)%100 >= 80) {
			break
		}
		start, end = end, end.AddDate(0, s.months, 0)
	}
	return start, end
}

// keepEnded is how long an ended subscription stays in the snapshot.
const keepEnded = 90 * 24 * time.Hour

func (g *Generator) subscriptions(c *cust, day periods.Period) ([]model.Subscription, []model.Order) {
	var subs []sub
	r := g.rng("subs", c.i)
	callingProduct := ""
	for _, p := range []string{"dedicated-instance", "ucm-cloud", "calling"} {
		if c.has(p) {
			callingProduct = p
			break
		}
	}
	paid := func(key, product string, created time.Time) sub {
		sr := g.rng("sub", c.i, key)
		s := sub{key: key, product: product, created: created, months: pick(sr, []int{12, 24, 36}, []float64{60, 10, 30}),
			autoRenew: sr.Float64() < 0.65, renewSeed: g.h("renew", c.i, key),
			assignRate: 0.45 + sr.Float64()*0.6, useRate: 0.3 + sr.Float64()*0.7}
		if sr.Float64() < 0.15 {
			s.assignRate = 0.1 + sr.Float64()*0.35
		}
		return s
	}
	mainProduct := callingProduct
	if mainProduct == "" {
		mainProduct = "meetings"
		if !c.has("meetings") {
			mainProduct = "messaging"
		}
	}
	if c.trialOnly {
		length := pick(r, []int{1, 2, 3}, []float64{50, 30, 20})
		t := sub{key: "trial", product: mainProduct, trial: true, created: c.created, months: length, assignRate: 0.3 + r.Float64()*0.5, useRate: 0.5}
		subs = append(subs, t)
		if r.Float64() < 0.3 { // converted when the trial ended
			subs = append(subs, paid("converted", mainProduct, dateOf(c.created).AddDate(0, length, 0)))
		}
	} else {
		subs = append(subs, paid("main", mainProduct, c.created.Add(days(r.IntN(4)))))
		if callingProduct != "" && c.has("meetings") {
			subs = append(subs, paid("meetings", "meetings", c.created.Add(days(r.IntN(20)))))
		}
		if c.hasTrial {
			// A yearly trial of another product, at a customer-specific time of year,
			// so on any day some trials are running, some expiring, some expired.
			p := "meetings"
			if callingProduct == "" {
				p = "calling"
			}
			base := Epoch.Add(days(int(g.h("trial-base", c.i) % 365)))
			k := int(math.Floor(day.Start.Sub(base).Hours() / 24 / 365))
			if start := base.Add(days(365 * k)); start.After(c.created.Add(days(30))) {
				subs = append(subs, sub{key: fmt.Sprintf("trial-%d", k), product: p, trial: true, created: start,
					months: 1 + int(g.h("trial-len", c.i)%2), assignRate: 0.4, useRate: 0.5})
			}
		}
	}

	var rows []model.Subscription
	var orders []model.Order
	for _, s := range subs {
		if !s.created.Before(day.End()) {
			continue
		}
		if _, end := s.term(day); end.Add(keepEnded).Before(day.Start) {
			continue
		}
		row, ord := g.subscriptionRow(c, s, day)
		rows = append(rows, row)
		orders = append(orders, ord...)
	}
	return rows, orders
}

func (g *Generator) subscriptionRow(c *cust, s sub, day periods.Period) (model.Subscription, []model.Order) {
	sr := g.rng("sub-shape", c.i, s.key)
	start, end := s.term(day)
	row := model.Subscription{
		SubscriptionID: fmt.Sprintf("Sub%08d", g.h("sub-id", c.i, s.key)%100000000),
		SubscriberID:   fmt.Sprintf("SBR-%07d", g.h("subscriber", c.i, s.key)%10000000),
		CustomerID:     c.id,
		Product:        s.product,
		IsTrial:        s.trial,
		Status:         "active",
		CreatedAt:      s.created.Truncate(time.Second),
		StartDate:      model.DateOf(start),
		EndDate:        model.DateOf(end),
		AutoRenew:      s.autoRenew,
		OrderID:        fmt.Sprintf("ORD-%09d", g.h("order", c.i, s.key)%1000000000),
	}
	if s.trial {
		row.SubscriptionID = "Enterprise Trial"
		row.Status = "trial"
	} else if x := g.h("status", c.i, s.key) % 100; x < 2 {
		row.Status = "suspended"
	} else if x < 4 {
		row.Status = "cancelled"
	}

	// What was ordered, per license type: stable for the subscription, set around
	// the customer's expected size so compliance varies between over, under and ok.
	qty := map[string]int64{}
	switch s.product {
	case "calling", "dedicated-instance", "ucm-cloud":
		qty[model.KnowledgeWorker] = int64(math.Round(float64(c.size) * (0.85 + sr.Float64()*0.5)))
		qty[model.CommonArea] = int64(math.Round(float64(c.sharedDevs) * (0.85 + sr.Float64()*0.8)))
		// TelePresence rooms, plus the ~3% of users with a TelePresence device of their own.
		qty[model.TelePresence] = int64(math.Round((float64(c.tpRooms) + 0.03*float64(c.size)) * (0.85 + sr.Float64()*0.8)))
	default:
		qty[model.KnowledgeWorker] = int64(math.Round(float64(c.size) * (1 + sr.Float64()*0.3)))
	}
	var orders []model.Order
	for _, lt := range model.LicenseTypes {
		q := qty[lt]
		row.LicensesTotal += q
		if q == 0 {
			continue
		}
		o := model.Order{OrderID: row.OrderID, CustomerID: c.id, PartnerID: g.partnerID(c.partner), SubscriberID: row.SubscriberID, LicenseType: lt, Quantity: q}
		if g.bad("order", c.i, s.key, lt, day) {
			o.Quantity = -q
		}
		orders = append(orders, o)
	}
	// Assignment drifts week by week, use day by day.
	week := periods.Week(day.Start).ID()
	assign := math.Min(1, s.assignRate*(0.9+0.1*unit(g.h("assign", c.i, s.key, week))))
	row.LicensesAssigned = int64(math.Round(float64(row.LicensesTotal) * assign))
	row.LicensesUsed7d = int64(math.Round(float64(row.LicensesAssigned) * s.useRate * (0.85 + 0.15*unit(g.h("use", c.i, s.key, day.ID())))))

	svc := services[s.product]
	row.ProvisioningStatuses = make([]string, len(svc))
	fresh := day.End().Sub(s.created) < days(14)
	for k := range svc {
		x := g.h("prov", c.i, s.key, k) % 100
		switch {
		case fresh && x < 60:
			row.ProvisioningStatuses[k] = provisioningOther[1+int(x)%4]
		case x < 7:
			row.ProvisioningStatuses[k] = provisioningOther[int(x)%len(provisioningOther)]
		default:
			row.ProvisioningStatuses[k] = "Provisioned"
		}
	}
	if g.bad("subscription", c.i, s.key, day) {
		row.Status = "unknown"
	}
	return row, orders
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }
