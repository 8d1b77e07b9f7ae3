// Package source owns where sync-clusters reads a day's partner estate from: the
// Source interface and the per-customer bundle of rows it yields.
package source

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"tally/model"
	"tally/periods"
)

// ErrNotBackfillable is returned by a present-only source asked for a day outside
// its grace window.
var ErrNotBackfillable = errors.New("source cannot serve that day")

// ErrWaiting is a day not delivered yet (its manifest is missing) while its
// deadline has not passed: the period waits, no alert.
var ErrWaiting = errors.New("waiting for the day's delivery")

type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Permanent marks an error that retrying cannot fix (bad input).
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Rejected is a row the source could not use: unparseable, or delivered under
// another region than its customer's. Sync quarantines it with the reason.
type Rejected struct {
	Entity string         `json:"entity"`
	File   string         `json:"file"`
	Line   int64          `json:"line"` // line (CSV, JSON lines) or row (Parquet), from 1
	Reason string         `json:"reason"`
	Row    map[string]any `json:"row"`
}

// ChangeDetector is a source that can tell whether a day's inputs changed
// since a run recorded them (its notes): the day and its downstream are stale.
type ChangeDetector interface {
	Changed(ctx context.Context, day periods.Period, notes map[string]any) (reason string, err error)
}

// Skipped is a customer a day was synced without, and why.
type Skipped struct {
	// Partner is whose customer it is: only that partner's emails and views
	// name it.
	Partner  string `json:"partner_id,omitempty"`
	Customer string `json:"customer_id"`
	Name     string `json:"customer_name,omitempty"`
	Reason   string `json:"reason"`
}

// Partial is a source that may leave customers out of a day (they kept
// failing, or their region is unknown): the day is then partial, never
// silently complete. Sync asks before Notes.
type Partial interface {
	Skipped(day periods.Period) []Skipped
}

// PresentOnly is a source whose inventory is today's state (an API): sync
// serves a day from it only within source.grace after the day ends.
type PresentOnly interface {
	PresentOnly()
}

// CallsBackfiller is a present-only source whose call history reaches further
// back than its inventory: a day past the grace window but inside
// CallsRetention can have its calls fetched again, onto the inventory synced
// for that day when it was present.
type CallsBackfiller interface {
	CallsRetention() time.Duration
	// Calls yields the day's call legs of each of customers (Region, Customer
	// and Calls set), in the order given; a customer it cannot read is
	// skipped (Partial) or fails the call, as for Customers.
	Calls(ctx context.Context, day periods.Period, customers []CustomerRef, fn func(*CustomerDay) error) error
}

// CustomerRef is a customer synced earlier and the region its rows are in.
type CustomerRef struct {
	Region   string
	Customer model.Customer
}

// Noter is a source with facts for the run's ledger entry (input files, …).
type Noter interface {
	Notes(day periods.Period) map[string]any
}

// CustomerDay is everything a source knows about one customer on one day.
// Each slice is sorted by its id.
type CustomerDay struct {
	Region        string
	Customer      model.Customer
	Subscriptions []model.Subscription
	Orders        []model.Order
	Clusters      []model.Cluster
	Servers       []model.Server
	Users         []model.User
	Devices       []model.Device
	Numbers       []model.Number
	Calls         []model.CallLeg
	// Rejected rows are quarantined. A CustomerDay with an empty Customer
	// carries only these.
	Rejected []Rejected
	// CallStream, when set, yields the customer's calls in leg_id order instead
	// of Calls, so a customer with millions of legs a day is never all in memory.
	CallStream func(yield func(model.CallLeg) error) error
}

// Source yields a day of the estate.
type Source interface {
	// Name is the source's config name (demo, files, webex).
	Name() string
	// Partners lists the partners on day.
	Partners(ctx context.Context, day periods.Period) ([]model.Partner, error)
	// Customers calls fn for every customer of day, ordered by region (model.Regions
	// order) then customer_id, one at a time so memory stays bounded.
	Customers(ctx context.Context, day periods.Period, fn func(*CustomerDay) error) error
}

// Sort orders each of a customer's slices by its key, as every source yields
// them (sync writes rows in the order it gets them); stable, so rows with equal
// keys keep their delivered order and a re-run writes the same bytes.
func (cd *CustomerDay) Sort() {
	slices.SortStableFunc(cd.Clusters, func(a, b model.Cluster) int { return strings.Compare(a.ClusterID, b.ClusterID) })
	slices.SortStableFunc(cd.Servers, func(a, b model.Server) int { return strings.Compare(a.ServerID, b.ServerID) })
	slices.SortStableFunc(cd.Users, func(a, b model.User) int { return strings.Compare(a.UserID, b.UserID) })
	slices.SortStableFunc(cd.Devices, func(a, b model.Device) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	slices.SortStableFunc(cd.Numbers, func(a, b model.Number) int { return strings.Compare(a.Number, b.Number) })
	sort.SliceStable(cd.Subscriptions, func(i, j int) bool {
		a, b := cd.Subscriptions[i], cd.Subscriptions[j]
		return a.SubscriptionID+a.SubscriberID < b.SubscriptionID+b.SubscriberID
	})
	sort.SliceStable(cd.Orders, func(i, j int) bool {
		a, b := cd.Orders[i], cd.Orders[j]
		return a.OrderID+a.LicenseType < b.OrderID+b.LicenseType
	})
	slices.SortStableFunc(cd.Calls, func(a, b model.CallLeg) int { return strings.Compare(a.LegID, b.LegID) })
}

// EachCall calls fn for every call of the customer: from CallStream when the
// source streams them, else from Calls. Call it while the CustomerDay is
// yielded: a stream is read once, before the next customer.
func (cd *CustomerDay) EachCall(fn func(model.CallLeg) error) error {
	if cd.CallStream != nil {
		return cd.CallStream(fn)
	}
	for _, l := range cd.Calls {
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// Counter is a source that counts the rows it delivered per entity (the files
// source: every row of every file, parsed or rejected), so a run can show each
// of them written or quarantined.
type Counter interface {
	Delivered(day periods.Period) map[string]int64
}
