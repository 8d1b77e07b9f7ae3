package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"time"

	"tally/jobs"
	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/storage"
)

var partnerRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// partnerOption is a partner in the picker: its name shown, its id sent.
type partnerOption struct{ ID, Name string }

// analytics is one partner in one region for one week: the §7 KPIs, each
// table, and the 8-week trend charts, customers and partners by name.
func (c *Console) analytics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ctx := r.Context()
	published, err := c.publishedWeeks(ctx)
	if err != nil {
		c.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	week, err := pickWeek(q.Get("week"), published, c.Clock.Now())
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	data := map[string]any{"Week": week.ID(), "WeekEnd": week.End(), "Weeks": published}
	// Previous and next: the adjacent published weeks.
	for _, id := range published { // newest first
		if id > week.ID() {
			data["NextWeek"] = id
		} else if id < week.ID() {
			data["PrevWeek"] = id
			break
		}
	}
	// Which partners and regions have this week's analytics, and their names.
	regionsOf := map[string][]string{}
	names := map[string]string{}
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
		err = jobs.EachRow(ctx, store, jobs.InventoryKey("partners", region, week.LastDay()), func(p *model.Partner) { names[p.PartnerID] = p.PartnerName })
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			c.fail(w, r, http.StatusInternalServerError, err)
			return
		}
	}
	partners := make([]partnerOption, 0, len(regionsOf))
	for id := range regionsOf {
		name := names[id]
		if name == "" {
			name = "Partner " + id // not in the week's inventory: the id is all there is
		}
		partners = append(partners, partnerOption{ID: id, Name: name})
	}
	sort.Slice(partners, func(i, j int) bool {
		return partners[i].Name < partners[j].Name || partners[i].Name == partners[j].Name && partners[i].ID < partners[j].ID
	})
	data["Partners"] = partners
	partner := q.Get("partner")
	if partner == "" && len(partners) > 0 {
		partner = partners[0].ID
	}
	if partner != "" && !partnerRE.MatchString(partner) {
		c.fail(w, r, http.StatusBadRequest, fmt.Errorf("partner=%q: a partner id is letters, digits, '.', '_' and '-'", partner))
		return
	}
	data["Partner"] = partner
	data["PartnerName"] = names[partner]
	if names[partner] == "" {
		data["PartnerName"] = "Partner " + partner
	}
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
		// The §7 KPIs, each a link to the table whose rows it counts.
		data["KPIs"] = []kpi{{"Total customers", fmt.Sprint(k.TotalCustomers), ""},
			{"Approaching expiration (90 days)", fmt.Sprint(k.ApproachingExpiration), "#expiring"},
			{"Approaching renewal (90 days)", fmt.Sprint(k.ApproachingRenewal), "#renewing"},
			{"Low license assignment", fmt.Sprint(k.LowAssignment), "#low_assignment"},
			{"Over license limit", fmt.Sprint(k.OverLicenseLimit), "#overage"},
			{"Calling users", fmt.Sprint(k.CallingUsers), "#calling_users"}}
	}
	c.render(w, r, http.StatusOK, "analytics.html", data)
}

// publishedWeeks are the weeks the analytics job completed, newest first.
func (c *Console) publishedWeeks(ctx context.Context) ([]string, error) {
	recs, err := c.ledger.All(ctx, jobs.Analytics)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var weeks []string
	for _, rec := range recs {
		if rec.Status == runner.StatusSucceeded && !seen[rec.Period] {
			seen[rec.Period] = true
			weeks = append(weeks, rec.Period)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(weeks)))
	return weeks, nil
}

// pickWeek is the requested week, or the latest published one (the latest
// ended week when none is).
func pickWeek(id string, published []string, now time.Time) (periods.Period, error) {
	if id != "" {
		return periods.Parse(periods.Weekly, id)
	}
	if len(published) > 0 {
		return periods.Parse(periods.Weekly, published[0])
	}
	return periods.Latest(periods.Weekly, now), nil
}
