// Package subscriptions owns report subscriptions: who receives which template,
// how often, for which regions and customers, in which formats — their
// validation (roles, recipients, templates) and where they are stored.
package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"tally/model"
	"tally/periods"
	"tally/report"
	"tally/storage"
)

// Roles of a subscription's recipients.
const (
	FullAdmin     = "full-admin"
	ReadOnlyAdmin = "read-only-admin"
	SalesAdmin    = "sales-admin"
)

// Roles lists the valid roles.
var Roles = []string{FullAdmin, ReadOnlyAdmin, SalesAdmin}

// Formats a report can be written in.
var Formats = []string{"csv", "parquet", "xlsx"}

// Subscription is one report subscription.
type Subscription struct {
	ID         string          `json:"id"`
	PartnerID  string          `json:"partner_id"`
	Template   string          `json:"template,omitempty"` // a built-in's name or slug, or a custom template from config
	Custom     *report.Custom  `json:"custom,omitempty"`   // a custom template of its own
	Cadence    periods.Cadence `json:"cadence"`
	Regions    []string        `json:"regions,omitempty"` // empty: every region with data
	Recipients []string        `json:"recipients"`
	Role       string          `json:"role"`
	Customers  []string        `json:"customers,omitempty"` // a sales admin's assigned customers (org ids)
	Formats    []string        `json:"formats"`
	Paused     bool            `json:"paused,omitempty"`
	// Unsubscribed records the recipients who left through an email's
	// unsubscribe link, newest last (tally subscriptions update --to adds one back).
	Unsubscribed []Unsubscribe `json:"unsubscribed,omitempty"`
}

// Unsubscribe is one recipient leaving one subscription.
type Unsubscribe struct {
	Address string    `json:"address"`
	At      time.Time `json:"at"`
}

// Catalog resolves template names: the built-ins and custom templates from config.
type Catalog struct {
	custom map[string]*report.Custom
}

// NewCatalog validates the custom templates defined in config.
func NewCatalog(custom []report.Custom) (*Catalog, error) {
	c := &Catalog{custom: map[string]*report.Custom{}}
	for i := range custom {
		t := &custom[i]
		if _, err := t.Build(); err != nil {
			return nil, err
		}
		if _, err := report.Lookup(t.Name); err == nil {
			return nil, fmt.Errorf("custom template %q has the name of a built-in template", t.Name)
		}
		c.custom[strings.ToLower(t.Name)] = t
	}
	return c, nil
}

// Template resolves s's template.
func (c *Catalog) Template(s *Subscription) (*report.Template, error) {
	if s.Custom != nil {
		return s.Custom.Build()
	}
	if t, err := report.Lookup(s.Template); err == nil {
		return t, nil
	}
	if c != nil {
		if cu, ok := c.custom[strings.ToLower(s.Template)]; ok {
			return cu.Build()
		}
	}
	_, err := report.Lookup(s.Template)
	return nil, err
}

var (
	idRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	addressRE = regexp.MustCompile(`^[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$`)
	orgIDRE   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// ValidateAddress accepts a plain e-mail address and nothing else: no display
// name, no list, no line breaks (an address never reaches a header unchecked).
func ValidateAddress(a string) error {
	if strings.ContainsAny(a, "\r\n") {
		return fmt.Errorf("recipient %q contains a line break", a)
	}
	if !addressRE.MatchString(a) {
		return fmt.Errorf("recipient %q is not a plain e-mail address", a)
	}
	if addr, err := mail.ParseAddress(a); err != nil || addr.Address != a {
		return fmt.Errorf("recipient %q is not a plain e-mail address", a)
	}
	return nil
}

// Validate checks a subscription; every error names the field.
func (c *Catalog) Validate(s *Subscription) error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !idRE.MatchString(s.ID) {
		bad("id %q: 1–63 lower-case letters, digits and dashes, starting with a letter or digit", s.ID)
	}
	if strings.TrimSpace(s.PartnerID) == "" {
		bad("partner: required")
	} else if !regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`).MatchString(s.PartnerID) {
		bad("partner %q: letters, digits, _ and - only", s.PartnerID)
	}
	if (s.Template == "") == (s.Custom == nil) {
		bad("template: give a template or a custom template (one of them)")
	}
	tpl, err := c.Template(s)
	if err != nil {
		bad("%v", err)
	}
	if _, err := periods.ParseCadence(string(s.Cadence)); err != nil {
		bad("cadence: %v", err)
	} else if tpl != nil && tpl.Range == report.WeekRange && s.Cadence != periods.Weekly {
		bad("cadence %s: %s covers a week, so its subscriptions are weekly", s.Cadence, tpl.Name)
	}
	for _, r := range s.Regions {
		if !model.ValidRegion(r) {
			bad("region %q: the regions are %s", r, strings.Join(model.Regions, ", "))
		}
	}
	if len(s.Recipients) == 0 {
		bad("recipients: at least one")
	}
	for _, a := range s.Recipients {
		if err := ValidateAddress(a); err != nil {
			bad("%v", err)
		}
	}
	switch s.Role {
	case FullAdmin:
	case ReadOnlyAdmin:
		if tpl != nil && tpl.Custom != nil {
			bad("role read-only-admin: a read-only admin may not subscribe to a custom template (%s)", tpl.Name)
		}
	case SalesAdmin:
		if len(s.Customers) == 0 {
			bad("customers: a sales admin receives only assigned customers; list their org ids")
		}
	default:
		bad("role %q: one of %s", s.Role, strings.Join(Roles, ", "))
	}
	if s.Role != SalesAdmin && len(s.Customers) > 0 {
		bad("customers: only a sales admin's subscription lists assigned customers (%s sees all the partner's customers)", s.Role)
	}
	for _, id := range s.Customers {
		if !orgIDRE.MatchString(id) {
			bad("customer %q is not an org id (a lower-case UUID)", id)
		}
	}
	if len(s.Formats) == 0 {
		bad("formats: one or more of csv, parquet and xlsx")
	}
	for _, f := range s.Formats {
		if !slices.Contains(Formats, f) {
			bad("format %q: csv, parquet or xlsx", f)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("subscription %s: %s", s.ID, strings.Join(errs, "; "))
	}
	return nil
}

// Sees reports whether the subscription's recipients may see a customer of its partner.
func (s *Subscription) Sees(customerID string) bool {
	return s.Role != SalesAdmin || slices.Contains(s.Customers, customerID)
}

// InRegion reports whether the subscription covers region.
func (s *Subscription) InRegion(region string) bool {
	return len(s.Regions) == 0 || slices.Contains(s.Regions, region)
}

// Wants reports whether the subscription wants a format.
func (s *Subscription) Wants(format string) bool { return slices.Contains(s.Formats, format) }

// ErrNotFound is a subscription that does not exist.
var ErrNotFound = errors.New("no such subscription")

// Store keeps subscriptions in the control store, one JSON object each.
type Store struct {
	S storage.Store
}

func key(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", fmt.Errorf("subscription id %q: 1–63 lower-case letters, digits and dashes", id)
	}
	return "_subscriptions/" + id + ".json", nil
}

// Get reads one subscription.
func (st *Store) Get(ctx context.Context, id string) (*Subscription, error) {
	s, _, err := st.read(ctx, id)
	return s, err
}

// read reads one subscription and the version it was read at.
func (st *Store) read(ctx context.Context, id string) (*Subscription, storage.Object, error) {
	k, err := key(id)
	if err != nil {
		return nil, storage.Object{}, err
	}
	b, obj, err := storage.ReadAll(ctx, st.S, k)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, obj, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, obj, err
	}
	var s Subscription
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, obj, fmt.Errorf("subscription %s: %w", id, err)
	}
	return &s, obj, nil
}

// List reads every subscription, sorted by id.
func (st *Store) List(ctx context.Context) ([]*Subscription, error) {
	objs, err := st.S.List(ctx, "_subscriptions/")
	if err != nil {
		return nil, err
	}
	var out []*Subscription
	for _, o := range objs {
		id := strings.TrimSuffix(strings.TrimPrefix(o.Key, "_subscriptions/"), ".json")
		s, err := st.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Add stores a new subscription (an existing id is an error).
func (st *Store) Add(ctx context.Context, s *Subscription) error {
	k, err := key(s.ID)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if _, err := st.S.Create(ctx, k, b); errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("subscription %s already exists (tally subscriptions update changes it)", s.ID)
	} else if err != nil {
		return err
	}
	return nil
}

// Put stores s, replacing any subscription with its id.
func (st *Store) Put(ctx context.Context, s *Subscription) error {
	k, err := key(s.ID)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	_, err = st.S.Put(ctx, k, strings.NewReader(string(b)))
	return err
}

// Update changes a subscription with fn under a compare-and-swap: when another
// writer changed it in between, fn runs again on the newer version.
func (st *Store) Update(ctx context.Context, id string, fn func(*Subscription) error) (*Subscription, error) {
	k, err := key(id)
	if err != nil {
		return nil, err
	}
	for range 10 {
		s, obj, err := st.read(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := fn(s); err != nil {
			return nil, err
		}
		out, _ := json.MarshalIndent(s, "", "  ")
		_, err = st.S.Replace(ctx, k, obj.ETag, out)
		if errors.Is(err, storage.ErrPreconditionFailed) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("subscription %s: changed by others ten times while updating; try again", id)
}

// Remove deletes a subscription.
func (st *Store) Remove(ctx context.Context, id string) error {
	if _, err := st.Get(ctx, id); err != nil {
		return err
	}
	k, _ := key(id)
	return st.S.Delete(ctx, k)
}
