// Package source owns where sync-clusters reads a day's partner estate from: the
// Source interface and the per-customer bundle of rows it yields.
package source

import (
	"context"
	"errors"

	"tally/model"
	"tally/periods"
)

// ErrNotBackfillable is returned by a present-only source asked for a day outside
// its grace window.
var ErrNotBackfillable = errors.New("source cannot serve that day")

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
