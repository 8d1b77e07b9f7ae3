package webex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"tally/clock"
	"tally/model"
	"tally/periods"
	"tally/source"
	"tally/source/files"
	"tally/storage"
)

// Account is one partner and the client its administrator's token reads with.
type Account struct {
	Partner model.Partner
	Client  *Client
	// Webhook: the partner's call records come by push (the Partner Hub
	// Detailed Call Records webhook, stored by package cdrhook in Payloads),
	// not from polling the call history.
	Webhook bool
}

// Source reads the partners' managed customer organisations from the Webex
// REST APIs: inventory as of now (present only: sync refuses days past its
// grace window), calls from the call-history feed of each region's host.
type Source struct {
	Accounts []Account
	// Regions maps an organisation (its UUID) to the region of its data: the
	// API exposes no data location, so an unmapped organisation is quarantined,
	// never put in a default region.
	Regions map[string]string
	// CallsHosts is each region's call-history host (https://analytics-calling.webexapis.com
	// by default): the feed answers only from the organisation's own region.
	CallsHosts map[string]string
	// Parallel customers' inventory are fetched at once; CallsParallel
	// customers' call histories.
	Parallel, CallsParallel int
	// CallsInterval is the wait between two initial call-history requests of
	// one partner's token (the feed allows one a minute per user token;
	// pagination requests are paced at 10 a minute beside them).
	CallsInterval time.Duration
	// CallsLateness is how long after a day ends its last calls are in: the
	// call history is asked through day end + CallsLateness (a call that
	// started on the day and ended after midnight is reported then), and the
	// day waits until that window is readable (default 2 h).
	CallsLateness time.Duration
	// SkipFailedCustomers lets a day succeed, partial, without the customers
	// that kept failing; otherwise one failing customer fails the day.
	SkipFailedCustomers bool
	// Payloads are the stores the webhook receiver keeps call records in
	// (each region's; the control store for unmapped counts).
	Payloads storage.Regional
	// Files, when set, supplements the API with the landing zone (Dedicated
	// Instance clusters, servers and their users and devices, CDRs, commerce).
	Files *files.Source
	Clock clock.Clock
	Log   zerolog.Logger

	mu      sync.Mutex
	rosters map[string]*Roster // day → its roster, until Notes
	pacers  map[string]*callPacer
}

// CallsWindow is the longest window one call-history request may cover.
const CallsWindow = 12 * time.Hour

// CallsRetention is how far back the call-history feed keeps records.
const CallsRetention = 30 * 24 * time.Hour

var (
	_ source.Source          = (*Source)(nil)
	_ source.Noter           = (*Source)(nil)
	_ source.Partial         = (*Source)(nil)
	_ source.PresentOnly     = (*Source)(nil)
	_ source.CallsBackfiller = (*Source)(nil)
	_ source.ChangeDetector  = (*Source)(nil)
)

// PresentOnly: the inventory endpoints give today's state only.
func (s *Source) PresentOnly() {}

// CallsRetention is how far back the call-history feed reaches.
func (s *Source) CallsRetention() time.Duration { return CallsRetention }

// Name is "webex".
func (s *Source) Name() string { return "webex" }

type member struct {
	account *Account
	orgID   string // as the API spells it, for orgId=
	region  string
	cust    model.Customer
}

// Roster is a day's organisations, and what went wrong with some of them.
type Roster struct {
	members []member // by region (model.Regions order), then customer_id
	skipped []source.Skipped
	mu      sync.Mutex
	// pushed are the webhook partners' stored records of the day, a cursor
	// per partner and region (partner + "/" + region), opened as needed.
	pushed map[string]*payloadCursor
	// pushDone are the cursors finished, what each read; pushNotes all of
	// it, for the ledger.
	pushDone  map[string]map[string]any
	pushNotes map[string]any
}

// Member is a roster entry as tally config check shows it.
type Member struct {
	Partner, Region string
	Customer        model.Customer
}

// Members are the roster's organisations, by region then customer_id.
func (r *Roster) Members() []Member {
	out := make([]Member, len(r.members))
	for i, m := range r.members {
		out[i] = Member{Partner: m.account.Partner.PartnerID, Region: m.region, Customer: m.cust}
	}
	return out
}

func (r *Roster) skip(sk source.Skipped) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped = append(r.skipped, sk)
}

// Partners are the configured partners.
func (s *Source) Partners(ctx context.Context, day periods.Period) ([]model.Partner, error) {
	out := make([]model.Partner, len(s.Accounts))
	for i, a := range s.Accounts {
		out[i] = a.Partner
	}
	return out, nil
}

// Roster lists every partner's managed organisations (GET /v1/organizations
// with the partner administrator's token), placed in their regions.
func (s *Source) Roster(ctx context.Context, day periods.Period) (*Roster, error) {
	s.mu.Lock()
	r := s.rosters[day.ID()]
	s.mu.Unlock()
	if r != nil {
		return r, nil
	}
	r = &Roster{}
	// /organizations lists a partner's own organisation beside its customers
	// (and another partner's, when one administers it): those are partners,
	// never customers, and never make a day partial.
	partnerOrgs := map[string]string{} // org UUID → partner
	for i := range s.Accounts {
		a := &s.Accounts[i]
		org, err := a.Client.OwnOrg(ctx)
		if err != nil {
			return nil, fmt.Errorf("partner %s: its own organisation (GET /people/me): %w", a.Partner.PartnerID, err)
		}
		partnerOrgs[org] = a.Partner.PartnerID
	}
	for i := range s.Accounts {
		a := &s.Accounts[i]
		err := a.Client.List(ctx, "/organizations", nil, func(raw json.RawMessage) error {
			var o Organization
			json.Unmarshal(raw, &o)
			if id, err := OrgUUID(o.ID); err == nil && partnerOrgs[id] != "" {
				return nil
			}
			c, err := CustomerOf(raw, a.Partner.PartnerID)
			if err != nil {
				r.skip(source.Skipped{Partner: a.Partner.PartnerID, Customer: o.ID, Name: o.DisplayName, Reason: err.Error()})
				return nil
			}
			region, ok := s.Regions[c.CustomerID]
			if !ok || !model.ValidRegion(region) {
				r.skip(source.Skipped{Partner: a.Partner.PartnerID, Customer: c.CustomerID, Name: c.CustomerName,
					Reason: fmt.Sprintf("no region for organisation %s: add it to source.webex.regions (the API gives no data location; never a default region)", c.CustomerID)})
				return nil
			}
			r.members = append(r.members, member{account: a, orgID: o.ID, region: region, cust: c})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("partner %s: list organisations: %w", a.Partner.PartnerID, err)
		}
	}
	rank := map[string]int{}
	for i, reg := range model.Regions {
		rank[reg] = i
	}
	sort.SliceStable(r.members, func(i, j int) bool {
		a, b := r.members[i], r.members[j]
		if a.region != b.region {
			return rank[a.region] < rank[b.region]
		}
		return a.cust.CustomerID < b.cust.CustomerID
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rosters == nil {
		s.rosters = map[string]*Roster{}
	}
	s.rosters[day.ID()] = r
	return r, nil
}

// Customers yields each organisation's day: its inventory fetched Parallel at
// a time and its calls CallsParallel at a time, yielded in roster order. With
// Files, the landing zone's rows of each customer are added to the API's.
func (s *Source) Customers(ctx context.Context, day periods.Period, fn func(*source.CustomerDay) error) error {
	if ready := s.callsReady(day); s.Clock.Now().Before(ready) {
		return fmt.Errorf("%w: the call records of %s are complete %s after the day ends (source.webex.calls_lateness), at %s", source.ErrWaiting, day.ID(), ready.Sub(day.End()), ready.Format(time.RFC3339))
	}
	// Each attempt lists the organisations afresh: a retry never reuses an
	// earlier attempt's roster or its skipped customers.
	s.mu.Lock()
	delete(s.rosters, day.ID())
	s.mu.Unlock()
	r, err := s.Roster(ctx, day)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results, wait := s.fetchAll(ctx, day, r, false)
	// Customers returns only when none of its fetches is still running.
	defer func() { cancel(); wait() }()
	defer s.closePushed(ctx, day, r)
	// next is the following customer's answer (nil when it was skipped).
	next := func() (result, bool, error) {
		res, ok := <-results
		if ok && res.err != nil {
			return res, true, res.err
		}
		if !ok && ctx.Err() != nil {
			return res, false, ctx.Err()
		}
		return res, ok, nil
	}
	if s.Files == nil {
		for {
			res, ok, err := next()
			if err != nil || !ok {
				return err
			}
			if res.cd == nil {
				continue
			}
			if err := s.attachPushed(ctx, day, r, res.cd); err != nil {
				return err
			}
			if err := fn(res.cd); err != nil {
				return err
			}
		}
	}
	return s.Files.Customers(ctx, day, func(fcd *source.CustomerDay) error {
		if fcd.Customer.CustomerID == "" {
			return fn(fcd) // the landing zone's rejected rows
		}
		res, ok, err := next()
		switch {
		case err != nil:
			return err
		case !ok || res.id != fcd.Customer.CustomerID:
			return fmt.Errorf("webex: the landing zone yielded customer %s out of the roster's order", fcd.Customer.CustomerID)
		case res.cd == nil:
			return nil // skipped: none of its rows are written
		}
		if err := s.attachPushed(ctx, day, r, res.cd); err != nil {
			return err
		}
		return fn(merge(res.cd, fcd))
	})
}

// Calls yields the day's call history of customers synced earlier, fetched
// CallsParallel at a time and yielded in the order given: the backfill of a
// day past the grace window, inside the feed's retention. A customer no
// partner manages any more cannot be read: it is skipped (Partial) or fails
// the day, as a failing customer does.
func (s *Source) Calls(ctx context.Context, day periods.Period, customers []source.CustomerRef, fn func(*source.CustomerDay) error) error {
	if s.Files != nil {
		return source.Permanent(fmt.Errorf("a calls backfill with source.files set would drop the landing zone's CDRs: backfill that day with the files source's export"))
	}
	if s.Clock.Now().Sub(day.Start) > CallsRetention {
		return source.Permanent(fmt.Errorf("%w: the call history keeps %s: %s is older", source.ErrNotBackfillable, CallsRetention, day.ID()))
	}
	s.mu.Lock()
	delete(s.rosters, day.ID())
	s.mu.Unlock()
	now, err := s.Roster(ctx, day) // today's organisations, for their tokens and API ids
	if err != nil {
		return err
	}
	byID := map[string]member{}
	for _, m := range now.members {
		byID[m.cust.CustomerID] = m
	}
	r := &Roster{}
	for _, c := range customers {
		m, ok := byID[c.Customer.CustomerID]
		if !ok {
			err := fmt.Errorf("customer %s (%s): no partner manages the organisation any more, so its call history cannot be read", c.Customer.CustomerID, c.Customer.CustomerName)
			if !s.SkipFailedCustomers {
				return err
			}
			r.skip(source.Skipped{Partner: c.Customer.PartnerID, Customer: c.Customer.CustomerID, Name: c.Customer.CustomerName, Reason: err.Error()})
			continue
		}
		m.region, m.cust = c.Region, c.Customer // the rows stay where the day put them
		r.members = append(r.members, m)
	}
	s.mu.Lock()
	s.rosters[day.ID()] = r
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results, wait := s.fetchAll(ctx, day, r, true)
	defer func() { cancel(); wait() }()
	defer s.closePushed(ctx, day, r)
	for res := range results {
		if res.err != nil {
			return res.err
		}
		if res.cd == nil {
			continue
		}
		if err := s.attachPushed(ctx, day, r, res.cd); err != nil {
			return err
		}
		if err := fn(res.cd); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// FilesRoster is the roster as the files source takes it (Files.Roster).
func (s *Source) FilesRoster(ctx context.Context, day periods.Period) ([]model.Partner, map[string][]model.Customer, error) {
	partners, _ := s.Partners(ctx, day)
	r, err := s.Roster(ctx, day)
	if err != nil {
		return nil, nil, err
	}
	customers := map[string][]model.Customer{}
	for _, m := range r.members {
		customers[m.region] = append(customers[m.region], m.cust)
	}
	return partners, customers, nil
}

// merge adds the landing zone's rows to the API's: a delivered subscription
// (with its term dates) replaces the one derived from licenses, with its orders.
func merge(api, fz *source.CustomerDay) *source.CustomerDay {
	out := *api
	out.Rejected = append(append([]source.Rejected{}, api.Rejected...), fz.Rejected...)
	if len(fz.Subscriptions) > 0 {
		delivered := map[string]bool{}
		for _, sub := range fz.Subscriptions {
			delivered[sub.SubscriberID] = true
		}
		out.Subscriptions = append([]model.Subscription{}, fz.Subscriptions...)
		for _, sub := range api.Subscriptions {
			if !delivered[sub.SubscriberID] {
				out.Subscriptions = append(out.Subscriptions, sub)
			}
		}
		out.Orders = append([]model.Order{}, fz.Orders...)
		for _, o := range api.Orders {
			if !delivered[o.SubscriberID] {
				out.Orders = append(out.Orders, o)
			}
		}
	} else {
		out.Orders = append(append([]model.Order{}, api.Orders...), fz.Orders...)
	}
	out.Clusters = append(append([]model.Cluster{}, api.Clusters...), fz.Clusters...)
	out.Servers = append(append([]model.Server{}, api.Servers...), fz.Servers...)
	out.Users = append(append([]model.User{}, api.Users...), fz.Users...)
	out.Devices = append(append([]model.Device{}, api.Devices...), fz.Devices...)
	out.Numbers = append(append([]model.Number{}, api.Numbers...), fz.Numbers...)
	out.Calls = append(append([]model.CallLeg{}, api.Calls...), fz.Calls...)
	if fz.CallStream != nil {
		apiCalls, stream := out.Calls, fz.CallStream
		out.Calls, out.CallStream = nil, func(yield func(model.CallLeg) error) error {
			for _, l := range apiCalls {
				if err := yield(l); err != nil {
					return err
				}
			}
			return stream(yield)
		}
	}
	out.Sort()
	return &out
}

type result struct {
	id  string
	cd  *source.CustomerDay // nil: skipped
	err error
}

// fetchAll fetches the roster's customers concurrently and delivers them in
// roster order; at most Parallel+CallsParallel are in flight or waiting. Once
// ctx is cancelled, wait returns when every goroutine it started has ended.
func (s *Source) fetchAll(ctx context.Context, day periods.Period, r *Roster, callsOnly bool) (results <-chan result, wait func()) {
	var wg sync.WaitGroup
	out := make(chan result)
	inventory := make(chan struct{}, max(1, s.Parallel))
	calls := make(chan struct{}, max(1, s.CallsParallel))
	window := make(chan chan result, max(1, s.Parallel)+max(1, s.CallsParallel))
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(window)
		for i := range r.members {
			slot := make(chan result, 1)
			select {
			case window <- slot:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func(m *member) {
				defer wg.Done()
				slot <- s.fetchOne(ctx, day, m, r, inventory, calls, callsOnly)
			}(&r.members[i])
		}
	}()
	go func() {
		defer wg.Done()
		defer close(out)
		for slot := range window {
			select {
			case res := <-slot:
				select {
				case out <- res:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, wg.Wait
}

// fetchOne reads one organisation: a failure skips it (SkipFailedCustomers)
// or fails the day.
func (s *Source) fetchOne(ctx context.Context, day periods.Period, m *member, r *Roster, inventory, calls chan struct{}, callsOnly bool) result {
	fail := func(what string, err error) result {
		err = fmt.Errorf("customer %s (%s) of partner %s: %s: %w", m.cust.CustomerID, m.cust.CustomerName, m.account.Partner.PartnerID, what, err)
		if s.SkipFailedCustomers && ctx.Err() == nil {
			s.Log.Warn().Err(err).Str("customer_id", m.cust.CustomerID).Msg("webex: skipping a customer that kept failing (source.webex.skip_failed_customers)")
			r.skip(source.Skipped{Partner: m.account.Partner.PartnerID, Customer: m.cust.CustomerID, Name: m.cust.CustomerName, Reason: err.Error()})
			return result{id: m.cust.CustomerID}
		}
		return result{err: err}
	}
	cd := &source.CustomerDay{Customer: m.cust}
	if !callsOnly {
		select {
		case inventory <- struct{}{}:
		case <-ctx.Done():
			return result{err: ctx.Err()}
		}
		e, err := s.inventory(ctx, m)
		<-inventory
		if err != nil {
			return fail("inventory", err)
		}
		cd = Map(e)
	}
	cd.Region = m.region
	if m.account.Webhook {
		return result{id: m.cust.CustomerID, cd: cd} // its calls come from the stored deliveries, in roster order
	}
	select {
	case calls <- struct{}{}:
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
	legs, rejected, err := s.calls(ctx, day, m)
	<-calls
	if err != nil {
		return fail("call history", err)
	}
	cd.Calls, cd.Rejected = legs, append(cd.Rejected, rejected...)
	return result{id: m.cust.CustomerID, cd: cd}
}

// inventory reads one organisation's inventory endpoints.
func (s *Source) inventory(ctx context.Context, m *member) (Estate, error) {
	e := Estate{Customer: m.cust}
	q := url.Values{"orgId": {m.orgID}}
	c := m.account.Client
	type endpoint struct {
		path, key string
		query     url.Values
		into      func(json.RawMessage) error
	}
	decode := func(name string, add func(json.RawMessage) error) func(json.RawMessage) error {
		return func(raw json.RawMessage) error {
			if err := add(raw); err != nil {
				return fmt.Errorf("%s item %.200s: %w", name, raw, err)
			}
			return nil
		}
	}
	people := url.Values{"orgId": {m.orgID}, "callingData": {"true"}}
	for _, ep := range []endpoint{
		{"/licenses", "items", q, decode("license", func(raw json.RawMessage) error { return appendJSON(raw, &e.Licenses) })},
		{"/locations", "items", q, decode("location", func(raw json.RawMessage) error { return appendJSON(raw, &e.Locations) })},
		{"/people", "items", people, decode("person", func(raw json.RawMessage) error { return appendJSON(raw, &e.People) })},
		{"/workspaces", "items", q, decode("workspace", func(raw json.RawMessage) error { return appendJSON(raw, &e.Workspaces) })},
		{"/devices", "items", q, decode("device", func(raw json.RawMessage) error { return appendJSON(raw, &e.Devices) })},
		{"/telephony/config/numbers", "phoneNumbers", q, decode("number", func(raw json.RawMessage) error { return appendJSON(raw, &e.Numbers) })},
	} {
		if err := c.ListAt(ctx, c.BaseURL, ep.path, ep.query, ep.key, ep.into); err != nil {
			return e, err
		}
	}
	return e, nil
}

func appendJSON[T any](raw json.RawMessage, into *[]T) error {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	*into = append(*into, v)
	return nil
}

// DefaultCallsHost is the call-history feed's public host.
const DefaultCallsHost = "https://analytics-calling.webexapis.com/v1"

// feedLag is how long after a call ends the feed has its record
// (reports-detailed-call-history: "available 5 minutes after a call has ended").
const feedLag = 5 * time.Minute

func (s *Source) lateness() time.Duration {
	if s.CallsLateness > 0 {
		return s.CallsLateness
	}
	return 2 * time.Hour
}

// callsReady is when the day's call records are all in: CallsLateness after
// it ends for pushed records; for polled ones, when the last window (through
// day end + CallsLateness) can be read, the feed's 5 minutes later.
func (s *Source) callsReady(day periods.Period) time.Time {
	for _, a := range s.Accounts {
		if !a.Webhook {
			return day.End().Add(s.lateness() + feedLag)
		}
	}
	return day.End().Add(s.lateness())
}

// calls reads the day's call history from the organisation's regional host.
// The feed selects records by report time (when the call finished), so the
// windows run from the day's start through its end + CallsLateness, at most
// CallsWindow each, and a leg is the day's when its Start time is in the day:
// one that started the evening before is the day before's, one that crossed
// midnight is this day's. Requests are paced per partner token, as the
// reference limits them.
func (s *Source) calls(ctx context.Context, day periods.Period, m *member) ([]model.CallLeg, []source.Rejected, error) {
	if s.Clock.Now().Sub(day.Start) > CallsRetention {
		return nil, nil, fmt.Errorf("the call history keeps %s: %s is older", CallsRetention, day.ID())
	}
	host := s.CallsHosts[m.region]
	if host == "" {
		host = DefaultCallsHost
	}
	pace := s.pacer(m.account)
	var legs []model.CallLeg
	var rejected []source.Rejected
	seen := map[string]bool{}
	last := day.End().Add(s.lateness())
	for from := day.Start; from.Before(last); from = from.Add(CallsWindow) {
		to := from.Add(CallsWindow)
		if to.After(last) {
			to = last
		}
		q := url.Values{"orgId": {m.orgID}, "startTime": {from.Format("2006-01-02T15:04:05.000Z")}, "endTime": {to.Format("2006-01-02T15:04:05.000Z")}, "max": {"500"}}
		err := m.account.Client.ListPaced(ctx, host, "/cdr_feed", q, "items", pace.wait, func(raw json.RawMessage) error {
			var rec CDR
			if err := json.Unmarshal(raw, &rec); err != nil {
				return fmt.Errorf("call record %.200s: %w", raw, err)
			}
			leg, err := CallLegOf(rec, m.cust.CustomerID)
			if err != nil {
				rejected = append(rejected, source.Rejected{Entity: "calls", File: "webex cdr_feed", Reason: err.Error(), Row: rec})
				return nil
			}
			if leg.StartTime.Before(day.Start) || !leg.StartTime.Before(day.End()) || seen[leg.LegID] {
				return nil // another day's leg, or one a window repeated
			}
			seen[leg.LegID] = true
			legs = append(legs, leg)
			return nil
		})
		var api *APIError
		if errors.As(err, &api) && api.Status == http.StatusUnavailableForLegalReasons {
			return nil, nil, fmt.Errorf("%w: the organisation's call history is not in region %s's host %s: check source.webex.regions and source.webex.calls_hosts", err, m.region, host)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	sortCalls(legs)
	return legs, rejected, nil
}

// callPacer spaces one partner token's call-history requests as the reference
// limits them: one initial request per CallsInterval (a minute), pagination
// requests 10 a minute. Every organisation of the partner shares it.
type callPacer struct {
	clock             clock.Clock
	first, page       time.Duration
	mu                sync.Mutex
	nextFirst, nextPg time.Time
}

func (s *Source) pacer(a *Account) *callPacer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pacers == nil {
		s.pacers = map[string]*callPacer{}
	}
	p := s.pacers[a.Partner.PartnerID]
	if p == nil {
		p = &callPacer{clock: s.Clock, first: s.CallsInterval, page: s.CallsInterval / 10}
		s.pacers[a.Partner.PartnerID] = p
	}
	return p
}

// wait takes the next slot of its kind and sleeps until it. Waiters queue:
// each sleeps in turn, so slots are taken in order.
func (p *callPacer) wait(ctx context.Context, first bool) error {
	if p.first <= 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	next, every := &p.nextPg, p.page
	if first {
		next, every = &p.nextFirst, p.first
	}
	at := now
	if next.After(at) {
		at = *next
	}
	*next = at.Add(every)
	if d := at.Sub(now); d > 0 {
		return p.clock.Sleep(ctx, d)
	}
	return nil
}

// attachPushed gives a webhook partner's customer its legs of the day from
// the stored deliveries: de-duplicated by Report ID, latest Report time kept,
// by Start time. Customers come in roster order, so each partner and region's
// records are read once, a customer at a time.
func (s *Source) attachPushed(ctx context.Context, day periods.Period, r *Roster, cd *source.CustomerDay) error {
	if !s.webhook(cd.Customer.PartnerID) {
		return nil
	}
	partner := cd.Customer.PartnerID
	key := partner + "/" + cd.Region
	r.mu.Lock()
	c := r.pushed[key]
	r.mu.Unlock()
	if c == nil {
		// The roster is in region order: a region begun means the ones
		// before are done; their records and run files are let go now.
		r.mu.Lock()
		for k, open := range r.pushed {
			if !strings.HasSuffix(k, "/"+cd.Region) {
				r.finish(k, open)
			}
		}
		r.mu.Unlock()
		st, err := s.Payloads.For(cd.Region)
		if err != nil {
			return err
		}
		pd, err := readPayloads(ctx, st, partner, day)
		if err != nil {
			return err
		}
		c = newCursor(pd)
		r.mu.Lock()
		if r.pushed == nil {
			r.pushed = map[string]*payloadCursor{}
		}
		r.pushed[key] = c
		r.mu.Unlock()
	}
	recs, err := c.take(cd.Customer.CustomerID)
	if err != nil {
		return fmt.Errorf("partner %s, region %s: %w", partner, cd.Region, err)
	}
	legs, rejected := legsOf(recs, cd.Customer.CustomerID, day, PayloadPrefix(partner, day))
	cd.Calls, cd.Rejected = legs, append(cd.Rejected, rejected...)
	return nil
}

func (s *Source) webhook(partner string) bool {
	for _, a := range s.Accounts {
		if a.Partner.PartnerID == partner {
			return a.Webhook
		}
	}
	return false
}

// closePushed releases the day's cursors and notes what the stored deliveries
// held: per webhook partner and region, the objects read (ChangedPayloads
// compares them later), the records, the records of organisations that are
// no customer of the partner's, and the records of unmapped organisations
// the receiver counted and did not store.
func (s *Source) closePushed(ctx context.Context, day periods.Period, r *Roster) {
	notes := map[string]any{}
	for _, a := range s.Accounts {
		if !a.Webhook {
			continue
		}
		p := a.Partner.PartnerID
		regions := map[string]any{}
		for _, region := range model.Regions {
			st, err := s.Payloads.For(region)
			if err != nil {
				continue
			}
			r.mu.Lock()
			if c := r.pushed[p+"/"+region]; c != nil {
				r.finish(p+"/"+region, c)
			}
			entry, read := r.pushDone[p+"/"+region]
			r.mu.Unlock()
			if read {
				regions[region] = entry
				continue
			}
			entry = map[string]any{}
			if objs, err := st.List(ctx, PayloadPrefix(p, day)); err == nil {
				l := listingOf(objs)
				entry["objects"], entry["digest"] = l.Objects, l.Digest
			}
			regions[region] = entry
		}
		partner := map[string]any{"regions": regions}
		if unmapped := unmappedCounts(ctx, s.Payloads.Control, p, day); len(unmapped) > 0 {
			partner["unmapped_orgs"] = unmapped
		}
		notes[p] = partner
	}
	if len(notes) == 0 {
		notes = nil // no partner's calls come by webhook
	}
	r.mu.Lock()
	r.pushed, r.pushDone, r.pushNotes = nil, nil, notes
	r.mu.Unlock()
}

// finish closes a cursor and keeps what it read for the notes (r.mu held).
func (r *Roster) finish(key string, c *payloadCursor) {
	c.close()
	entry := map[string]any{"objects": c.pd.listing.Objects, "digest": c.pd.listing.Digest, "records": c.pd.records}
	if len(c.passed) > 0 {
		entry["not_customers"] = c.passed
	}
	if r.pushDone == nil {
		r.pushDone = map[string]map[string]any{}
	}
	r.pushDone[key] = entry
	delete(r.pushed, key)
}

// unmappedCounts sums the receiver's counts of partner's day's records of
// organisations with no region (not stored), per organisation.
func unmappedCounts(ctx context.Context, control storage.Store, partner string, day periods.Period) map[string]int64 {
	if control == nil {
		return nil
	}
	objs, err := control.List(ctx, UnmappedPrefix(partner, day))
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	for _, o := range objs {
		b, _, err := storage.ReadAll(ctx, control, o.Key)
		if err != nil {
			continue
		}
		var counts map[string]int64
		if json.Unmarshal(b, &counts) == nil {
			for org, n := range counts {
				out[org] += n
			}
		}
	}
	return out
}

// Changed tells a day synced from stored deliveries that more arrived since
// (late records): the day is stale, and backfill --stale re-runs it.
func (s *Source) Changed(ctx context.Context, day periods.Period, notes map[string]any) (string, error) {
	pushed, _ := notes["call_payloads"].(map[string]any)
	for _, a := range s.Accounts {
		if !a.Webhook {
			continue
		}
		p := a.Partner.PartnerID
		partner, _ := pushed[p].(map[string]any)
		regions, _ := partner["regions"].(map[string]any)
		for _, region := range model.Regions {
			st, err := s.Payloads.For(region)
			if err != nil {
				continue
			}
			objs, err := st.List(ctx, PayloadPrefix(p, day))
			if err != nil {
				return "", err
			}
			now := listingOf(objs)
			had, _ := regions[region].(map[string]any)
			digest, _ := had["digest"].(string)
			n, _ := had["objects"].(float64)
			if now.Objects != int(n) || (now.Objects > 0 && now.Digest != digest) {
				return fmt.Sprintf("partner %s's call records of %s in region %s: %d deliveries stored now, %d when the day was synced (late records)", p, day.ID(), region, now.Objects, int(n)), nil
			}
		}
	}
	if s.Files != nil {
		if fn, ok := notes["files"].(map[string]any); ok {
			return s.Files.Changed(ctx, day, fn)
		}
	}
	return "", nil
}

// Skipped are the customers a day was synced without (sync marks it partial).
func (s *Source) Skipped(day periods.Period) []source.Skipped {
	s.mu.Lock()
	r := s.rosters[day.ID()]
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]source.Skipped{}, r.skipped...)
	sort.Slice(out, func(i, j int) bool { return out[i].Customer < out[j].Customer })
	return out
}

// Notes are the day's organisations per partner and region, and the landing
// zone's files when it supplements the API. The day's roster is let go.
func (s *Source) Notes(day periods.Period) map[string]any {
	s.mu.Lock()
	r := s.rosters[day.ID()]
	delete(s.rosters, day.ID())
	s.mu.Unlock()
	notes := map[string]any{}
	if r != nil {
		count := map[string]map[string]int{}
		for _, m := range r.members {
			p := m.account.Partner.PartnerID
			if count[p] == nil {
				count[p] = map[string]int{}
			}
			count[p][m.region]++
		}
		notes["organisations"] = count
		r.mu.Lock()
		if r.pushNotes != nil {
			notes["call_payloads"] = r.pushNotes
		}
		r.mu.Unlock()
	}
	if s.Files != nil {
		if fn := s.Files.Notes(day); fn != nil {
			notes["files"] = fn
		}
	}
	return notes
}
