package jobs

import (
	"context"
	"fmt"
	"runtime"
	"sort"

	"golang.org/x/sync/errgroup"

	"tally/license"
	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/storage"
)

// Usage is the license-usage job: it classifies every user and device of the day's
// snapshot and writes usage per license, cluster, subscription and customer.
type Usage struct {
	// UnderThreshold: consumed below this share of entitled is "under" (default 0.5).
	UnderThreshold float64
}

func (u *Usage) Name() string             { return LicenseUsage }
func (u *Usage) Cadence() periods.Cadence { return periods.Daily }
func (u *Usage) Schedule() string         { return "15 0 * * *" }

// Needs is the day's snapshot.
func (u *Usage) Needs(p periods.Period) []runner.Dep {
	return []runner.Dep{{Job: SyncClusters, Period: p}}
}

// Writes lists the usage tables.
func (u *Usage) Writes(p periods.Period, regions []string) []string {
	var out []string
	for _, r := range regions {
		for _, g := range UsageGrains {
			out = append(out, UsageKey(g, r, p))
		}
	}
	return out
}

// regionInputs are one region's snapshot tables, each sorted by customer_id.
type regionInputs struct {
	customers *stream[model.Customer]
	subs      *stream[model.Subscription]
	orders    *stream[model.Order]
	clusters  *stream[model.Cluster]
	servers   *stream[model.Server]
	users     *stream[license.User]
	devices   *stream[license.Device]
}

func (in *regionInputs) close() {
	in.customers.close()
	in.subs.close()
	in.orders.close()
	in.clusters.close()
	in.servers.close()
	in.users.close()
	in.devices.close()
}

// next is the smallest customer id at the head of any input.
func (in *regionInputs) next() (string, bool) {
	best, found := "", false
	for _, peek := range []func() (string, bool){in.customers.peek, in.subs.peek, in.orders.peek, in.clusters.peek, in.servers.peek, in.users.peek, in.devices.peek} {
		if k, ok := peek(); ok && (!found || k < best) {
			best, found = k, true
		}
	}
	return best, found
}

func openInputs(ctx context.Context, s storage.Store, region string, day periods.Period) (in *regionInputs, err error) {
	in = &regionInputs{}
	defer func() {
		if err != nil {
			in.close()
		}
	}()
	key := func(e string) string { return InventoryKey(e, region, day) }
	if in.customers, err = openStream(ctx, s, key("customers"), func(r *model.Customer) string { return r.CustomerID }); err != nil {
		return
	}
	if in.subs, err = openStream(ctx, s, key("subscriptions"), func(r *model.Subscription) string { return r.CustomerID }); err != nil {
		return
	}
	if in.orders, err = openStream(ctx, s, key("orders"), func(r *model.Order) string { return r.CustomerID }); err != nil {
		return
	}
	if in.clusters, err = openStream(ctx, s, key("clusters"), func(r *model.Cluster) string { return r.CustomerID }); err != nil {
		return
	}
	if in.servers, err = openStream(ctx, s, key("servers"), func(r *model.Server) string { return r.CustomerID }); err != nil {
		return
	}
	if in.users, err = openStream(ctx, s, key("users"), func(r *license.User) string { return r.CustomerID }); err != nil {
		return
	}
	in.devices, err = openStream(ctx, s, key("devices"), func(r *license.Device) string { return r.CustomerID })
	return
}

// customerInputs is one customer's slice of the snapshot.
type customerInputs struct {
	id        string
	customer  *model.Customer
	subs      []model.Subscription
	orders    []model.Order
	clusters  []model.Cluster
	servers   []model.Server
	users     []license.User
	devices   []license.Device
	partnerID string
}

func (in *regionInputs) take(k string) (*customerInputs, error) {
	c := &customerInputs{id: k}
	var err error
	custs, err := in.customers.take(k)
	if err != nil {
		return nil, err
	}
	if len(custs) > 0 {
		c.customer = &custs[0]
		c.partnerID = custs[0].PartnerID
	}
	if c.subs, err = in.subs.take(k); err != nil {
		return nil, err
	}
	if c.orders, err = in.orders.take(k); err != nil {
		return nil, err
	}
	if c.partnerID == "" && len(c.orders) > 0 {
		c.partnerID = c.orders[0].PartnerID
	}
	if c.clusters, err = in.clusters.take(k); err != nil {
		return nil, err
	}
	if c.servers, err = in.servers.take(k); err != nil {
		return nil, err
	}
	if c.users, err = in.users.take(k); err != nil {
		return nil, err
	}
	c.devices, err = in.devices.take(k)
	return c, err
}

// usageOut are one region's usage tables, and the buffers each customer's
// rows are built in (reused from customer to customer).
type usageOut struct {
	license      *table[model.LicenseUse]
	cluster      *table[model.ClusterUsage]
	subscription *table[model.SubscriptionUsage]
	customer     *table[model.CustomerUsage]

	rows      []model.LicenseUse
	consumed  map[string]int64
	byCluster map[string]map[string]int64
	entitled  map[string]map[string]int64
}

func (o *usageOut) tables() []committer {
	return []committer{o.license, o.cluster, o.subscription, o.customer}
}

func openUsage(ctx context.Context, rc *runner.RunContext, region string) (o *usageOut, err error) {
	o = &usageOut{consumed: map[string]int64{}, byCluster: map[string]map[string]int64{}, entitled: map[string]map[string]int64{}}
	defer func() {
		if err != nil {
			abortAll(o.tables(), err)
		}
	}()
	day := rc.Period
	if o.license, err = openTable[model.LicenseUse](ctx, rc, region, UsageKey("license", region, day)); err != nil {
		return
	}
	if o.cluster, err = openTable[model.ClusterUsage](ctx, rc, region, UsageKey("cluster", region, day)); err != nil {
		return
	}
	if o.subscription, err = openTable[model.SubscriptionUsage](ctx, rc, region, UsageKey("subscription", region, day)); err != nil {
		return
	}
	o.customer, err = openTable[model.CustomerUsage](ctx, rc, region, UsageKey("customer", region, day))
	return
}

// Run computes each region from that region's snapshot only (data residency).
//
// Regions share nothing, so they run side by side, as many at once as there
// are cores (GOMAXPROCS): the first to fail stops the others.
func (u *Usage) Run(ctx context.Context, rc *runner.RunContext) error {
	stores := make([]storage.Store, len(rc.Regions))
	for i, region := range rc.Regions {
		s, err := rc.Store(region)
		if err != nil {
			return err
		}
		stores[i] = s
	}
	byRegion := make([]map[string]int64, len(rc.Regions))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, region := range rc.Regions {
		byRegion[i] = map[string]int64{}
		g.Go(func() error {
			if err := u.region(ctx, rc, stores[i], region, byRegion[i]); err != nil {
				return fmt.Errorf("region %s: %w", region, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	compliance := map[string]int64{}
	for _, m := range byRegion {
		for state, n := range m {
			compliance[state] += n
		}
	}
	rc.Note("compliance", compliance)
	return nil
}

func (u *Usage) region(ctx context.Context, rc *runner.RunContext, store storage.Store, region string, compliance map[string]int64) error {
	in, err := openInputs(ctx, store, region, rc.Period)
	if err != nil {
		return err
	}
	defer in.close()
	out, err := openUsage(ctx, rc, region)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			abortAll(out.tables(), err)
			return err
		}
		k, ok := in.next()
		if !ok {
			break
		}
		c, err := in.take(k)
		if err == nil {
			err = u.customer(c, rc.Period, out, compliance)
		}
		if err != nil {
			abortAll(out.tables(), err)
			return err
		}
	}
	return commitAll(out.tables())
}

// customer applies §6 to one customer and writes its usage rows.
func (u *Usage) customer(c *customerInputs, day periods.Period, out *usageOut, compliance map[string]int64) error {
	uses := license.Classify(c.users, c.devices)
	attributed := license.Attribute(c.subs, day.Start)
	var subID, subscriberID *string
	if attributed != nil {
		subID, subscriberID = model.Str(attributed.SubscriptionID), model.Str(attributed.SubscriberID)
	}

	consumed, byCluster, rows := out.consumed, out.byCluster, out.rows[:0]
	clear(consumed)
	clear(byCluster)
	for _, use := range uses {
		consumed[use.LicenseType]++
		if use.ClusterID != nil {
			if byCluster[*use.ClusterID] == nil {
				byCluster[*use.ClusterID] = map[string]int64{}
			}
			byCluster[*use.ClusterID][use.LicenseType]++
		}
		rows = append(rows, model.LicenseUse{CustomerID: c.id, SubscriptionID: subID, SubscriberID: subscriberID,
			ClusterID: use.ClusterID, EntityType: use.EntityType, EntityID: use.EntityID, LicenseType: use.LicenseType})
	}
	out.rows = rows
	if err := out.license.add(rows...); err != nil {
		return err
	}

	// Entitled = the sum of a subscription's orders per license type.
	entitled := out.entitled
	clear(entitled)
	for _, o := range c.orders {
		if entitled[o.SubscriberID] == nil {
			entitled[o.SubscriberID] = map[string]int64{}
		}
		entitled[o.SubscriberID][o.LicenseType] += o.Quantity
	}

	// Every calling subscription has a row per license type, zeros included;
	// consumption counts on the attributed one only.
	subs := append([]model.Subscription(nil), c.subs...)
	sort.Slice(subs, func(i, j int) bool {
		return subs[i].SubscriptionID+"\x00"+subs[i].SubscriberID < subs[j].SubscriptionID+"\x00"+subs[j].SubscriberID
	})
	for _, s := range subs {
		if !license.IsCalling(s.Product) {
			continue
		}
		for _, lt := range model.LicenseTypes {
			var used int64
			if attributed != nil && s.SubscriberID == attributed.SubscriberID {
				used = consumed[lt]
			}
			ent := entitled[s.SubscriberID][lt]
			state := license.Compliance(ent, used, u.UnderThreshold)
			compliance[state]++
			if err := out.subscription.add(model.SubscriptionUsage{SubscriptionID: s.SubscriptionID, SubscriberID: s.SubscriberID,
				CustomerID: c.id, PartnerID: c.partnerID, LicenseType: lt, Entitled: ent, Consumed: used, Compliance: state}); err != nil {
				return err
			}
		}
	}

	for _, lt := range model.LicenseTypes {
		var ent int64
		if attributed != nil {
			ent = entitled[attributed.SubscriberID][lt]
		}
		if err := out.customer.add(model.CustomerUsage{CustomerID: c.id, PartnerID: c.partnerID, SubscriberID: subscriberID,
			LicenseType: lt, Entitled: ent, Consumed: consumed[lt]}); err != nil {
			return err
		}
	}

	// The Dedicated Instance view: per cluster, with its publisher.
	publisher := map[string]string{}
	for _, s := range c.servers {
		if s.Role == "publisher" {
			publisher[s.ClusterID] = s.Host
		}
	}
	fqdn := map[string]string{}
	ids := []string{}
	for _, cl := range c.clusters {
		fqdn[cl.ClusterID] = cl.FQDN
		ids = append(ids, cl.ClusterID)
	}
	for id := range byCluster {
		if _, known := fqdn[id]; !known {
			ids = append(ids, id) // a cluster quarantined today still gets its usage
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := byCluster[id]
		if err := out.cluster.add(model.ClusterUsage{ClusterID: id, FQDN: fqdn[id], Publisher: publisher[id], CustomerID: c.id,
			KnowledgeWorker: n[model.KnowledgeWorker], CommonArea: n[model.CommonArea], TelePresence: n[model.TelePresence]}); err != nil {
			return err
		}
	}
	return nil
}
