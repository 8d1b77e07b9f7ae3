package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"tally/model"
	"tally/periods"
	"tally/runner"
	"tally/source"
	"tally/storage"
)

// Sync is the sync-clusters job: it snapshots the day's inventory and call legs
// from the source into Parquet, per entity and per region.
type Sync struct {
	Source source.Source
	// EmptyGuard fails a day where an entity has no rows but had some the day before.
	EmptyGuard bool
	// Ledger reads the previous day's row counts for the guard.
	Ledger *runner.Ledger
	// Grace is how long after a day ends a present-only source (an API) still
	// serves it.
	Grace time.Duration
}

func (s *Sync) Name() string                      { return SyncClusters }
func (s *Sync) Cadence() periods.Cadence          { return periods.Daily }
func (s *Sync) Schedule() string                  { return "0 0 * * *" }
func (s *Sync) Needs(periods.Period) []runner.Dep { return nil }

// Writes lists the snapshot's keys.
func (s *Sync) Writes(p periods.Period, regions []string) []string {
	var out []string
	for _, r := range regions {
		for _, e := range Entities {
			out = append(out, InventoryKey(e, r, p))
		}
		out = append(out, CallsKey(r, p), fmt.Sprintf("quarantine/<entity>/region=%s/day=%s/part-0.jsonl (only if rows are malformed)", r, p.ID()))
	}
	return out
}

// regionSnapshot is the open outputs of one region.
type regionSnapshot struct {
	region        string
	partners      map[string]bool
	customers     *table[model.Customer]
	subscriptions *table[model.Subscription]
	orders        *table[model.Order]
	clusters      *table[model.Cluster]
	servers       *table[model.Server]
	users         *table[model.User]
	devices       *table[model.Device]
	numbers       *table[model.Number]
	calls         *table[model.CallLeg]
	q             *quarantine
	prevClusters  map[string]bool // nil: no previous snapshot
	prevServers   map[string]bool
	newClusters   []string
	newPublishers []string
}

func (r *regionSnapshot) tables() []committer {
	return []committer{r.customers, r.subscriptions, r.orders, r.clusters, r.servers, r.users, r.devices, r.numbers, r.calls}
}

// finish writes the footers of the region's files; commit publishes them.
func (r *regionSnapshot) finish() error {
	for _, t := range r.tables() {
		if err := t.finish(); err != nil {
			return err
		}
	}
	return nil
}

// Run pulls the day from the source, one customer at a time, and streams each
// region's rows into its own storage; malformed rows go to quarantine.
func (s *Sync) Run(ctx context.Context, rc *runner.RunContext) error {
	day := rc.Period
	if _, live := s.Source.(source.PresentOnly); live && rc.Clock.Now().After(day.End().Add(s.Grace)) {
		if cb, ok := s.Source.(source.CallsBackfiller); ok && rc.Clock.Now().Sub(day.Start) <= cb.CallsRetention() {
			return s.backfillCalls(ctx, rc, cb)
		}
		return runner.Usage(fmt.Errorf("%w: source %s serves only the present: day %s ended more than %s ago (source.grace); use the files source or an export for past days", source.ErrNotBackfillable, s.Source.Name(), day.ID(), s.Grace))
	}
	partners, err := s.Source.Partners(ctx, day)
	if err != nil {
		return sourceError(s.Source.Name(), err)
	}

	snaps := map[string]*regionSnapshot{}
	var all []committer
	var quarantines []*quarantine
	fail := func(err error) error {
		abortAll(all, err)
		for _, q := range quarantines {
			q.abort(err)
		}
		return err
	}
	for _, region := range rc.Regions {
		snap, err := s.openRegion(ctx, rc, region, day)
		if err != nil {
			return fail(err)
		}
		snaps[region] = snap
		all = append(all, snap.tables()...)
		quarantines = append(quarantines, snap.q)
	}

	// Sources yield customers ordered by region: when one moves on to the next
	// region, the regions before it are finished (their files' footers written,
	// their writers' memory let go), so only one region's writers are open.
	rank := map[string]int{}
	for i, r := range model.Regions {
		rank[r] = i
	}
	current := -1
	err = pullAhead(ctx, s.Source, day, func(cd *source.CustomerDay) error {
		r, known := rank[cd.Region]
		if !known {
			return runner.Permanent(fmt.Errorf("source %s: customer %s has unknown region %q", s.Source.Name(), cd.Customer.CustomerID, cd.Region))
		}
		if r < current {
			return runner.Permanent(fmt.Errorf("source %s: customer %s of region %s came after region %s's: a source yields customers ordered by region (%s)",
				s.Source.Name(), cd.Customer.CustomerID, cd.Region, model.Regions[current], strings.Join(model.Regions, ", ")))
		}
		for ; current < r; current++ {
			if current < 0 {
				continue
			}
			if done, ok := snaps[model.Regions[current]]; ok {
				if err := done.finish(); err != nil {
					return err
				}
			}
		}
		snap, ok := snaps[cd.Region]
		if !ok {
			return nil // a region outside --region
		}
		for _, r := range cd.Rejected {
			row := map[string]any{"file": r.File, "line": r.Line, "row": r.Row}
			if err := snap.q.add(ctx, r.Entity, row, errors.New(r.Reason)); err != nil {
				return err
			}
		}
		if cd.Customer.CustomerID == "" {
			return nil // only rejected rows
		}
		return snap.add(ctx, cd)
	})
	if err != nil {
		return fail(sourceError(s.Source.Name(), err))
	}

	if err := s.guard(ctx, rc, snaps); err != nil {
		return fail(err)
	}

	// Partners: a partner row goes to every region where it has customers.
	partnersWritten := int64(0)
	for _, region := range rc.Regions {
		snap := snaps[region]
		var rows []model.Partner
		for _, p := range partners {
			if snap.partners[p.PartnerID] {
				rows = append(rows, p)
			}
		}
		partnersOut, err := openTable[model.Partner](ctx, rc, region, InventoryKey("partners", region, day))
		if err != nil {
			return fail(err)
		}
		all = append(all, partnersOut)
		if rows, err = keepValid(ctx, snap.q, "partners", rows, (*model.Partner).Validate); err != nil {
			return fail(err)
		}
		if err := partnersOut.add(rows...); err != nil {
			return fail(err)
		}
		partnersWritten += int64(len(rows))
	}

	for _, q := range quarantines {
		if err := q.commit(); err != nil {
			return fail(err)
		}
	}
	if err := commitAll(all); err != nil {
		return err
	}
	if ps, ok := s.Source.(source.Partial); ok {
		if skipped := ps.Skipped(day); len(skipped) > 0 {
			rc.Note("skipped_customers", skipped)
			for _, sk := range skipped {
				rc.Partial(runner.PartnerGap(sk.Partner, fmt.Sprintf("%s: customer %s (%s) skipped: %s", rc.Period.ID(), sk.Customer, sk.Name, sk.Reason)))
			}
			rc.Log.Warn().Int("customers", len(skipped)).Msg("the day is partial: some customers were skipped (tally runs shows which)")
		}
	}
	s.noteRows(rc, snaps, partnersWritten)
	if n, ok := s.Source.(source.Noter); ok {
		if notes := n.Notes(day); notes != nil {
			rc.Note("source", notes)
		}
	}
	s.noteNew(rc, snaps)
	return nil
}

// noteRows records, per entity, the rows written and quarantined and, when
// the source counts them, delivered: every delivered row is accounted for.
func (s *Sync) noteRows(rc *runner.RunContext, snaps map[string]*regionSnapshot, partnersWritten int64) {
	var delivered map[string]int64
	if c, ok := s.Source.(source.Counter); ok {
		delivered = c.Delivered(rc.Period)
	}
	written, quarantined := map[string]int64{"partners": partnersWritten}, map[string]int64{}
	names := append(slices.Clone(Entities[1:]), "calls") // the order of regionSnapshot.tables
	for _, region := range rc.Regions {
		snap := snaps[region]
		for i, t := range snap.tables() {
			written[names[i]] += t.(interface{ Rows() int64 }).Rows()
		}
		for e, n := range snap.q.rows {
			quarantined[e] += n
		}
	}
	rows := map[string]map[string]any{}
	for _, e := range append(slices.Clone(Entities), "calls") {
		r := map[string]any{"written": written[e], "quarantined": quarantined[e]}
		if delivered != nil {
			r["delivered"] = delivered[e]
		}
		if e == "partners" {
			r["note"] = "partners are de-duplicated, then written to every region where they have customers"
		} else if len(rc.Regions) != len(model.Regions) {
			r["note"] = "rows of the regions outside --region are neither written nor quarantined"
		}
		rows[e] = r
	}
	rc.Note("rows", rows)
}

// pullAhead calls fn with every customer of the source's day, in order, while
// the source pulls the next ones on its own goroutine (up to aheadCustomers
// ahead): the demo's generation or an API's pages overlap writing, so a sync
// keeps two cores busy. A CustomerDay with a CallStream reads the source's
// open files, so the source waits until fn is done with it. fn's error stops
// the source and is returned; otherwise the source's.
func pullAhead(ctx context.Context, src source.Source, day periods.Period, fn func(*source.CustomerDay) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type pulled struct {
		cd   *source.CustomerDay
		done chan struct{} // closed when fn is done with cd (CallStream only)
	}
	queue := make(chan pulled, aheadCustomers)
	var srcErr error
	go func() {
		defer close(queue)
		srcErr = src.Customers(ctx, day, func(cd *source.CustomerDay) error {
			if err := ctx.Err(); err != nil {
				return err // fn failed: no more pulling
			}
			p := pulled{cd: cd}
			if cd.CallStream != nil {
				p.done = make(chan struct{})
			}
			select {
			case queue <- p:
			case <-ctx.Done():
				return ctx.Err()
			}
			if p.done != nil {
				select {
				case <-p.done:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}()
	var err error
	for p := range queue { // drained to the end, so the source always returns
		if err == nil {
			if err = fn(p.cd); err != nil {
				cancel()
			}
		}
		if p.done != nil {
			close(p.done)
		}
	}
	if err != nil {
		return err
	}
	return srcErr
}

// aheadCustomers is how many customers the source may pull ahead of writing.
const aheadCustomers = 4

// sourceError says which source failed and how the runner treats it: a day not
// delivered yet waits, bad input fails at once.
func sourceError(name string, err error) error {
	var runErr error = fmt.Errorf("source %s: %w", name, err)
	switch {
	case errors.Is(err, source.ErrWaiting):
		return runner.Waiting(runErr)
	case source.IsPermanent(err):
		return runner.Permanent(runErr)
	}
	return runErr
}

func (s *Sync) openRegion(ctx context.Context, rc *runner.RunContext, region string, day periods.Period) (*regionSnapshot, error) {
	snap := &regionSnapshot{region: region, partners: map[string]bool{}, q: newQuarantine(rc, region, day)}
	var err error
	cleanup := func(err error) (*regionSnapshot, error) { abortAll(snap.tables(), err); return nil, err }
	open := func(entity string) string { return InventoryKey(entity, region, day) }
	if snap.customers, err = openTable[model.Customer](ctx, rc, region, open("customers")); err != nil {
		return cleanup(err)
	}
	if snap.subscriptions, err = openTable[model.Subscription](ctx, rc, region, open("subscriptions")); err != nil {
		return cleanup(err)
	}
	if snap.orders, err = openTable[model.Order](ctx, rc, region, open("orders")); err != nil {
		return cleanup(err)
	}
	if snap.clusters, err = openTable[model.Cluster](ctx, rc, region, open("clusters")); err != nil {
		return cleanup(err)
	}
	if snap.servers, err = openTable[model.Server](ctx, rc, region, open("servers")); err != nil {
		return cleanup(err)
	}
	if snap.users, err = openTable[model.User](ctx, rc, region, open("users")); err != nil {
		return cleanup(err)
	}
	if snap.devices, err = openTable[model.Device](ctx, rc, region, open("devices")); err != nil {
		return cleanup(err)
	}
	if snap.numbers, err = openTable[model.Number](ctx, rc, region, open("numbers")); err != nil {
		return cleanup(err)
	}
	if snap.calls, err = openTable[model.CallLeg](ctx, rc, region, CallsKey(region, day)); err != nil {
		return cleanup(err)
	}

	// The previous snapshot, to note clusters and publisher nodes that are new.
	store, err := rc.Stores.For(region)
	if err != nil {
		return cleanup(err)
	}
	prev := day.Prev()
	if cls, err := readAll[model.Cluster](ctx, store, InventoryKey("clusters", region, prev)); err == nil {
		snap.prevClusters = map[string]bool{}
		for _, c := range cls {
			snap.prevClusters[c.ClusterID] = true
		}
		srvs, err := readAll[model.Server](ctx, store, InventoryKey("servers", region, prev))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return cleanup(err)
		}
		snap.prevServers = map[string]bool{}
		for _, s := range srvs {
			snap.prevServers[s.ServerID] = true
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return cleanup(err)
	}
	return snap, nil
}

// add validates one customer's rows and streams the good ones to the region's tables.
func (r *regionSnapshot) add(ctx context.Context, cd *source.CustomerDay) error {
	q := r.q
	custs, err := keepValid(ctx, q, "customers", []model.Customer{cd.Customer}, (*model.Customer).Validate)
	if err != nil {
		return err
	}
	if len(custs) == 1 {
		r.partners[cd.Customer.PartnerID] = true
		if err := r.customers.add(custs...); err != nil {
			return err
		}
	}
	if err := validAdd(ctx, q, "subscriptions", r.subscriptions, cd.Subscriptions, (*model.Subscription).Validate); err != nil {
		return err
	}
	if err := validAdd(ctx, q, "orders", r.orders, cd.Orders, (*model.Order).Validate); err != nil {
		return err
	}
	clusters, err := keepValid(ctx, q, "clusters", cd.Clusters, (*model.Cluster).Validate)
	if err != nil {
		return err
	}
	if err := r.clusters.add(clusters...); err != nil {
		return err
	}
	servers, err := keepValid(ctx, q, "servers", cd.Servers, (*model.Server).Validate)
	if err != nil {
		return err
	}
	if err := r.servers.add(servers...); err != nil {
		return err
	}
	if r.prevClusters != nil {
		for _, c := range clusters {
			if !r.prevClusters[c.ClusterID] {
				r.newClusters = append(r.newClusters, c.ClusterID)
			}
		}
		for _, s := range servers {
			if s.Role == "publisher" && !r.prevServers[s.ServerID] {
				r.newPublishers = append(r.newPublishers, s.ServerID)
			}
		}
	}
	if err := validAdd(ctx, q, "users", r.users, cd.Users, (*model.User).Validate); err != nil {
		return err
	}
	if err := validAdd(ctx, q, "devices", r.devices, cd.Devices, (*model.Device).Validate); err != nil {
		return err
	}
	if err := validAdd(ctx, q, "numbers", r.numbers, cd.Numbers, (*model.Number).Validate); err != nil {
		return err
	}
	if cd.CallStream == nil {
		return validAdd(ctx, q, "calls", r.calls, cd.Calls, (*model.CallLeg).Validate)
	}
	return cd.EachCall(func(l model.CallLeg) error {
		return validAdd(ctx, q, "calls", r.calls, []model.CallLeg{l}, (*model.CallLeg).Validate)
	})
}

func validAdd[T any](ctx context.Context, q *quarantine, entity string, t *table[T], rows []T, validate func(*T) error) error {
	good, err := keepValid(ctx, q, entity, rows, validate)
	if err != nil {
		return err
	}
	return t.add(good...)
}

// guard refuses a day where an entity has no rows at all but had some the day
// before: a broken export, not an empty estate.
func (s *Sync) guard(ctx context.Context, rc *runner.RunContext, snaps map[string]*regionSnapshot) error {
	if !s.EmptyGuard || s.Ledger == nil || len(rc.Regions) != len(model.Regions) {
		return nil
	}
	prev, done, err := s.Ledger.Complete(ctx, SyncClusters, rc.Period.Prev().ID())
	if err != nil || !done {
		return err
	}
	now := map[string]int64{}
	for _, snap := range snaps {
		now["inventory/customers"] += snap.customers.Rows()
		now["inventory/users"] += snap.users.Rows()
		now["inventory/devices"] += snap.devices.Rows()
		now["inventory/numbers"] += snap.numbers.Rows()
		now["inventory/subscriptions"] += snap.subscriptions.Rows()
		now["calls"] += snap.calls.Rows()
	}
	tables := make([]string, 0, len(now))
	for t := range now {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		if now[t] == 0 && prev.Rows[t] > 0 {
			return runner.Permanent(fmt.Errorf("source %s returned no %s rows for %s, but %s had %d: refusing an empty snapshot (source.empty_guard)", s.Source.Name(), t, rc.Period.ID(), prev.Period, prev.Rows[t]))
		}
	}
	return nil
}

func (s *Sync) noteNew(rc *runner.RunContext, snaps map[string]*regionSnapshot) {
	var newClusters, newPublishers []string
	compared := false
	for _, region := range rc.Regions {
		snap := snaps[region]
		if snap.prevClusters != nil {
			compared = true
		}
		newClusters = append(newClusters, snap.newClusters...)
		newPublishers = append(newPublishers, snap.newPublishers...)
	}
	if !compared {
		rc.Note("new_since_previous", "no previous snapshot to compare with")
		return
	}
	rc.Note("new_clusters", nonNil(newClusters))
	rc.Note("new_publishers", nonNil(newPublishers))
	if len(newClusters)+len(newPublishers) > 0 {
		rc.Log.Info().Strs("clusters", newClusters).Strs("publishers", newPublishers).Msg("new clusters and publisher nodes since the previous snapshot")
	}
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// backfillCalls re-syncs a past day's calls onto the inventory synced for it
// when it was present: the inventory tables are carried over row for row
// (byte-identical), the call legs fetched again for the customers in them.
// Customers the day was synced without stay missing: the earlier run's
// partial lines are kept.
func (s *Sync) backfillCalls(ctx context.Context, rc *runner.RunContext, cb source.CallsBackfiller) error {
	day := rc.Period
	var all []committer
	fail := func(err error) error { abortAll(all, err); return err }
	var refs []source.CustomerRef
	calls := map[string]*table[model.CallLeg]{}
	qs := map[string]*quarantine{}
	for _, region := range rc.Regions {
		store, err := rc.Stores.For(region)
		if err != nil {
			return fail(err)
		}
		customers, err := readAll[model.Customer](ctx, store, InventoryKey("customers", region, day))
		if errors.Is(err, storage.ErrNotFound) {
			return fail(runner.Usage(fmt.Errorf("%w: source %s serves only the present, and day %s (ended more than %s ago, source.grace) was never synced in region %s: only its calls are still in the call history, and they need the day's inventory; use the files source or an export for past days", source.ErrNotBackfillable, s.Source.Name(), day.ID(), s.Grace, region)))
		}
		if err != nil {
			return fail(err)
		}
		for _, c := range customers {
			refs = append(refs, source.CustomerRef{Region: region, Customer: c})
		}
		for _, entity := range Entities {
			t, err := carry(ctx, rc, store, region, InventoryKey(entity, region, day), entity)
			if err != nil {
				return fail(err)
			}
			all = append(all, t)
		}
		if calls[region], err = openTable[model.CallLeg](ctx, rc, region, CallsKey(region, day)); err != nil {
			return fail(err)
		}
		all = append(all, calls[region])
		qs[region] = newQuarantine(rc, region, day)
	}
	rc.Log.Info().Int("customers", len(refs)).Msg("backfilling the day's calls onto the inventory synced for it (the day is past source.grace, inside the call history's retention)")
	err := cb.Calls(ctx, day, refs, func(cd *source.CustomerDay) error {
		for _, r := range cd.Rejected {
			if err := qs[cd.Region].add(ctx, r.Entity, map[string]any{"file": r.File, "line": r.Line, "row": r.Row}, errors.New(r.Reason)); err != nil {
				return err
			}
		}
		return validAdd(ctx, qs[cd.Region], "calls", calls[cd.Region], cd.Calls, (*model.CallLeg).Validate)
	})
	if err != nil {
		for _, q := range qs {
			q.abort(err)
		}
		return fail(sourceError(s.Source.Name(), err))
	}
	if err := commitAll(all); err != nil {
		return err
	}
	for _, q := range qs {
		if err := q.commit(); err != nil {
			return err
		}
	}
	rc.Note("calls_backfill", fmt.Sprintf("inventory carried over from the day's earlier sync; calls fetched again at %s", rc.Clock.Now().UTC().Format(time.RFC3339)))
	if s.Ledger != nil {
		attempts, err := s.Ledger.Attempts(ctx, SyncClusters, day.ID())
		if err != nil {
			return err
		}
		for i := len(attempts) - 1; i >= 0; i-- { // the inventory's gaps are still there
			if a := attempts[i]; a.Status == runner.StatusSucceeded {
				for _, gap := range a.Partial {
					rc.Partial(gap)
				}
				break
			}
		}
	}
	if ps, ok := s.Source.(source.Partial); ok {
		for _, sk := range ps.Skipped(day) {
			rc.Partial(runner.PartnerGap(sk.Partner, fmt.Sprintf("%s: customer %s (%s) calls not backfilled: %s", day.ID(), sk.Customer, sk.Name, sk.Reason)))
		}
	}
	if n, ok := s.Source.(source.Noter); ok {
		if notes := n.Notes(day); notes != nil {
			rc.Note("source", notes)
		}
	}
	return nil
}

// carry copies an inventory table of the day's earlier sync into this run's outputs.
func carry(ctx context.Context, rc *runner.RunContext, store storage.Store, region, key, entity string) (committer, error) {
	switch entity {
	case "partners":
		return carryRows[model.Partner](ctx, rc, store, region, key)
	case "customers":
		return carryRows[model.Customer](ctx, rc, store, region, key)
	case "subscriptions":
		return carryRows[model.Subscription](ctx, rc, store, region, key)
	case "orders":
		return carryRows[model.Order](ctx, rc, store, region, key)
	case "clusters":
		return carryRows[model.Cluster](ctx, rc, store, region, key)
	case "servers":
		return carryRows[model.Server](ctx, rc, store, region, key)
	case "users":
		return carryRows[model.User](ctx, rc, store, region, key)
	case "devices":
		return carryRows[model.Device](ctx, rc, store, region, key)
	case "numbers":
		return carryRows[model.Number](ctx, rc, store, region, key)
	}
	return nil, fmt.Errorf("carry: unknown inventory entity %q", entity)
}

func carryRows[T any](ctx context.Context, rc *runner.RunContext, store storage.Store, region, key string) (*table[T], error) {
	in, err := openInput[T](ctx, store, key)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	t, err := openTable[T](ctx, rc, region, key)
	if err != nil {
		return nil, err
	}
	for {
		row, ok := in.Next()
		if !ok {
			break
		}
		if err := t.add(row); err != nil {
			t.abort(err)
			return nil, err
		}
	}
	if err := in.Err(); err != nil {
		t.abort(err)
		return nil, err
	}
	return t, nil
}
